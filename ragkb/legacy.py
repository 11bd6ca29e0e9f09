"""Text of Word 97-2003 (.doc) and PowerPoint 97-2003 (.ppt) files, read from their OLE
streams in pure Python (olefile), following Microsoft's published formats [MS-DOC] and [MS-PPT].

Why not LibreOffice (what unstructured's partition_doc/partition_ppt call): it is a ~400 MB
install, starts a multi-second office process per file, and needs more virtual memory than the
parse workers allow. No PyPI package parses these formats without a native program (textract
shells out to antiword/catdoc). The text itself is simple to reach: a .doc keeps it in pieces
listed by the piece table (CLX); a .ppt keeps it in text atoms, placeholders in the
SlideListWithText and text boxes in each slide's drawing. Styles are not read, so headings are
found the way they are in plain text (short lines without a full stop).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from ragkb.blocks import Block, ParseError

_FIELD_BEGIN, _FIELD_SEP, _FIELD_END = "\x13", "\x14", "\x15"
_CELL = "\x07"
# Word's special characters -> text: paragraph/line/page breaks, non-breaking and optional hyphens;
# anchors of pictures, footnote and comment marks have no text.
_SPECIAL = str.maketrans({"\x0b": "\n", "\x0c": "\n", "\x1e": "-", "\x1f": "", "\xa0": " ",
                          "\x01": "", "\x02": "", "\x05": "", "\x08": ""})  # fmt: skip


def _ole(path: Path, what: str):  # type: ignore[no-untyped-def]
    import olefile

    try:
        return olefile.OleFileIO(str(path))
    except (OSError, ValueError, IndexError, TypeError) as exc:
        article = "an" if what[0] in "AEIOU" else "a"
        raise ParseError(f"not {article} {what}: not an OLE compound file, or a corrupt one ({type(exc).__name__})") from exc


# --- Word 97-2003 -------------------------------------------------------------------------------


def doc_paragraphs(path: Path) -> list[tuple[str, str]]:
    """(kind, text) pairs: 'text' for paragraphs, 'table' for a table's rows (' | ' between cells)."""
    with _ole(path, "Word 97-2003 document") as ole:
        if not ole.exists("WordDocument"):
            raise ParseError("not a Word 97-2003 document: no WordDocument stream")
        word = ole.openstream("WordDocument").read()
        if len(word) < 0x200 or struct.unpack_from("<H", word, 0)[0] != 0xA5EC:
            raise ParseError("not a Word 97-2003 document (Word 6/95 or corrupt): no Word 97 header")
        flags = struct.unpack_from("<H", word, 0x0A)[0]
        if flags & 0x0100:
            raise ParseError("encrypted Word document: password-protected; save it without a password to ingest it")
        table_name = "1Table" if flags & 0x0200 else "0Table"
        if not ole.exists(table_name):
            raise ParseError(f"corrupt Word document: the {table_name} stream is missing")
        table = ole.openstream(table_name).read()
    text = _doc_text(word, table)
    return _doc_structure(_strip_fields(text))


def _doc_text(word: bytes, table: bytes) -> str:
    """The main document's characters, through the piece table (FibRgFcLcb97.fcClx)."""
    try:
        pos = 0x20
        csw = struct.unpack_from("<H", word, pos)[0]
        pos += 2 + csw * 2
        cslw = struct.unpack_from("<H", word, pos)[0]
        ccp_text = struct.unpack_from("<i", word, pos + 2 + 3 * 4)[0]
        pos += 2 + cslw * 4 + 2
        fc_clx, lcb_clx = struct.unpack_from("<II", word, pos + 33 * 8)
        clx = table[fc_clx : fc_clx + lcb_clx]
        i = 0
        while i < len(clx) and clx[i] == 0x01:  # Prc: property modifiers, skipped
            i += 3 + struct.unpack_from("<H", clx, i + 1)[0]
        if i >= len(clx) or clx[i] != 0x02:
            raise ParseError("corrupt Word document: no piece table")
        lcb = struct.unpack_from("<I", clx, i + 1)[0]
        plc = clx[i + 5 : i + 5 + lcb]
        count = (lcb - 4) // 12
        cps = struct.unpack_from(f"<{count + 1}I", plc, 0)
        parts: list[str] = []
        for n in range(count):
            start, end = cps[n], min(cps[n + 1], ccp_text)
            if start >= end:
                continue
            fc = struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * n + 2)[0]
            if fc & 0x40000000:  # compressed: one cp1252 byte per character
                offset = (fc & 0x3FFFFFFF) // 2
                parts.append(word[offset : offset + end - start].decode("cp1252", errors="replace"))
            else:
                parts.append(word[fc : fc + 2 * (end - start)].decode("utf-16-le", errors="replace"))
    except struct.error as exc:
        raise ParseError("corrupt Word document: its file information block is truncated") from exc
    return "".join(parts)


def _strip_fields(text: str) -> str:
    """Field codes (HYPERLINK "...", PAGE, TOC ...) out, their displayed results kept."""
    out: list[str] = []
    stack: list[bool] = []  # per open field: are we past its separator (showing the result)?
    for char in text:
        if char == _FIELD_BEGIN:
            stack.append(False)
        elif char == _FIELD_SEP and stack:
            stack[-1] = True
        elif char == _FIELD_END and stack:
            stack.pop()
        elif all(stack):
            out.append(char)
    return "".join(out)


def _doc_structure(text: str) -> list[tuple[str, str]]:
    """Paragraphs end with '\\r'; table cells end with '\\x07' and a row with one more."""
    items: list[tuple[str, str]] = []
    rows: list[str] = []
    cells: list[str] = []
    pending = ""
    for para in text.split("\r"):
        if _CELL not in para:
            if rows or cells:
                _close_table(items, rows, cells)
            for text in (pending, para):  # text after a row's end mark is a paragraph of its own
                cleaned = " ".join(text.translate(_SPECIAL).split())
                if cleaned:
                    items.append(("text", cleaned))
            pending = ""
            continue
        pieces = (pending + para).split(_CELL)
        pending = ""
        for piece in pieces[:-1]:
            cleaned = " ".join(piece.translate(_SPECIAL).split())
            if piece == "" and cells:  # the extra mark that ends a row
                rows.append(" | ".join(cells))
                cells = []
            else:
                cells.append(cleaned)
        pending = pieces[-1] + " " if pieces[-1] else ""  # a multi-paragraph cell continues
    if rows or cells:
        _close_table(items, rows, cells)
    return items


def _close_table(items: list[tuple[str, str]], rows: list[str], cells: list[str]) -> None:
    if cells:
        rows.append(" | ".join(cells))
    lines = [row for row in rows if row.strip(" |")]
    if lines:
        items.append(("table", "\n".join(lines)))
    rows.clear()
    cells.clear()


# --- PowerPoint 97-2003 -------------------------------------------------------------------------

_TEXT_CHARS, _TEXT_BYTES, _TEXT_HEADER = 0x0FA0, 0x0FA8, 0x0F9F
_SLIDE_LIST, _SLIDE_PERSIST, _SLIDE, _USER_EDIT, _PERSIST_DIR = 0x0FF0, 0x03F3, 0x03EE, 0x0FF5, 0x1772
_TITLE_TYPES = {0, 6}  # TextHeaderAtom: title, centred title


def ppt_slides(path: Path) -> list[Block]:
    """Blocks per slide (page = slide number): titles, then body text, then text boxes."""
    with _ole(path, "PowerPoint 97-2003 presentation") as ole:
        if not ole.exists("PowerPoint Document"):
            raise ParseError("not a PowerPoint 97-2003 presentation: no 'PowerPoint Document' stream")
        names = {"/".join(e).lower() for e in ole.listdir()}
        if "encryptedsummary" in names:
            raise ParseError("encrypted PowerPoint presentation: password-protected; save it without a password to ingest it")
        stream = ole.openstream("PowerPoint Document").read()
        current = ole.openstream("Current User").read() if ole.exists("Current User") else b""
    try:
        offsets = _persist_offsets(stream, current)
        slides = _slide_texts(stream, offsets)
    except struct.error as exc:
        raise ParseError("corrupt PowerPoint presentation: a record runs past the end of the stream") from exc
    blocks: list[Block] = []
    for number, texts in enumerate(slides, start=1):
        section: str | None = None
        for kind, text in texts:
            if kind == "title":
                section = " ".join(text.split())[:200]
            blocks.append(Block(text, number, section, kind))
    return blocks


def _records(data: bytes, start: int, end: int):  # type: ignore[no-untyped-def]
    """(type, instance, version, body start, body end) of each record in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        ver_inst, rec_type, length = struct.unpack_from("<HHI", data, pos)
        body_end = min(pos + 8 + length, end)
        yield rec_type, ver_inst >> 4, ver_inst & 0x0F, pos + 8, body_end
        pos = body_end


def _persist_offsets(stream: bytes, current: bytes) -> dict[int, int]:
    """persist id -> offset in the stream, newest edit first (UserEditAtom chain)."""
    offsets: dict[int, int] = {}
    edit = struct.unpack_from("<I", current, 16)[0] if len(current) >= 20 else None
    seen: set[int] = set()
    while edit and edit not in seen and edit + 32 <= len(stream):
        seen.add(edit)
        if struct.unpack_from("<H", stream, edit + 2)[0] != _USER_EDIT:
            break
        last_edit, directory = struct.unpack_from("<II", stream, edit + 16)
        _, rec_type, length = struct.unpack_from("<HHI", stream, directory)
        pos, end = directory + 8, directory + 8 + length
        while rec_type == _PERSIST_DIR and pos + 4 <= end:
            entry = struct.unpack_from("<I", stream, pos)[0]
            first, count = entry & 0xFFFFF, entry >> 20
            for k in range(count):
                offsets.setdefault(first + k, struct.unpack_from("<I", stream, pos + 4 + 4 * k)[0])
            pos += 4 + 4 * count
        edit = last_edit
    return offsets


def _slide_texts(stream: bytes, offsets: dict[int, int]) -> list[list[tuple[str, str]]]:
    slides: list[list[tuple[str, str]]] = []
    persist_ids: list[int] = []
    for rec_type, instance, _, start, end in _walk(stream, 0, len(stream)):
        if rec_type != _SLIDE_LIST or instance != 0:  # instance 0: slides (1 master, 2 notes)
            continue
        kind = "text"
        for inner, _, _, body, body_end in _records(stream, start, end):
            if inner == _SLIDE_PERSIST:
                slides.append([])
                persist_ids.append(struct.unpack_from("<I", stream, body)[0])
            elif inner == _TEXT_HEADER and slides:
                kind = "title" if struct.unpack_from("<I", stream, body)[0] in _TITLE_TYPES else "text"
            elif inner in (_TEXT_CHARS, _TEXT_BYTES) and slides:
                _add_text(slides[-1], kind, _atom_text(stream, inner, body, body_end))
        break
    for index, persist_id in enumerate(persist_ids):  # text boxes live in the slide's drawing
        offset = offsets.get(persist_id)
        if offset is None or offset + 8 > len(stream):
            continue
        _, rec_type, length = struct.unpack_from("<HHI", stream, offset)
        if rec_type != _SLIDE:
            continue
        kind = "text"
        for inner, _, _, body, body_end in _walk(stream, offset + 8, offset + 8 + length):
            if inner == _TEXT_HEADER:
                kind = "title" if struct.unpack_from("<I", stream, body)[0] in _TITLE_TYPES else "text"
            elif inner in (_TEXT_CHARS, _TEXT_BYTES):
                _add_text(slides[index], kind, _atom_text(stream, inner, body, body_end))
    return slides


def _walk(data: bytes, start: int, end: int):  # type: ignore[no-untyped-def]
    """Every record under data[start:end], depth first; containers (version 0xF) are entered."""
    for record in _records(data, start, end):
        yield record
        if record[2] == 0x0F:
            yield from _walk(data, record[3], record[4])


def _atom_text(stream: bytes, rec_type: int, start: int, end: int) -> str:
    raw = stream[start:end]
    return raw.decode("utf-16-le", errors="replace") if rec_type == _TEXT_CHARS else raw.decode("cp1252", errors="replace")


def _add_text(texts: list[tuple[str, str]], kind: str, text: str) -> None:
    for line in re.split(r"[\r\n\x0b]+", text):
        cleaned = " ".join(line.replace("\x00", "").split())
        if cleaned and cleaned != "*":  # '*' is the placeholder for a slide number
            texts.append((kind, cleaned))


# --- Outlook .msg ----------------------------------------------------------------------------------

_ENCRYPTED_ATTACHMENTS = ("application/pgp-encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime")


def msg_encryption_reason(path: Path) -> str | None:
    """Why an Outlook message's body cannot be read (S/MIME, PGP or Rights Management), or None."""
    with _ole(path, "Outlook message") as ole:
        names = ["/".join(entry) for entry in ole.listdir()]

        def read(name: str) -> str:
            for suffix, encoding in (("001F", "utf-16-le"), ("001E", "cp1252")):
                if ole.exists(name + suffix):
                    return ole.openstream(name + suffix).read().decode(encoding, errors="replace").strip("\x00 ")
            return ""

        message_class = read("__substg1.0_001A").upper()
        attachments = {name.split("/")[0] for name in names if name.startswith("__attach_version1.0_")}
        kinds = [(read(f"{a}/__substg1.0_370E").lower(), read(f"{a}/__substg1.0_3707").lower()) for a in attachments]
    if message_class.startswith("IPM.NOTE.SMIME") and "MULTIPARTSIGNED" not in message_class:
        return "encrypted email (S/MIME): the body cannot be read without the key"
    if ".RPMSG" in message_class or any(name.endswith(".rpmsg") for _, name in kinds):
        return "encrypted email (Microsoft Rights Management): the body cannot be read without the key"
    if any(mime in _ENCRYPTED_ATTACHMENTS or name.endswith(".p7m") and "smime" in name for mime, name in kinds):
        return "encrypted email (S/MIME or PGP): the body cannot be read without the key"
    return None
