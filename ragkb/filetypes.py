"""What a file is: its document type (by extension, else by content), its text encoding, and
whether its zip container is safe to open.

Content matters because names lie or are missing: `README`, `LICENSE`, `Apache-2.0` and a PDF
saved without an extension are documents, a PNG renamed `notes` is not. The same bytes must get
the same type under any name (`notes.txt` renamed to `notes`), since ingest derives document
ids from the type and a rename must not re-embed anything.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ragkb.charsets import detect_encoding
from ragkb.containers import sniff_ole, sniff_zip, zip_bomb_reason

__all__ = ["DOC_TYPES", "SUPPORTED_SUFFIXES", "NotRegularFile", "detect_type", "file_kind", "looks_textual", "read_bytes",
           "unsupported_reason", "zip_bomb_reason"]  # fmt: skip

# extension -> document type; SUPPORTED_SUFFIXES is what the UI offers for upload
_BY_SUFFIX: dict[str, str] = {
    ".pdf": "pdf", ".docx": "docx", ".docm": "docx", ".pptx": "pptx", ".pptm": "pptx",
    ".html": "html", ".htm": "html", ".xhtml": "html", ".md": "md", ".markdown": "md",
    ".txt": "text", ".text": "text", ".eml": "email", ".msg": "msg",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".tif": "image", ".tiff": "image",
    ".bmp": "image", ".gif": "image", ".webp": "image", ".heic": "image",
    ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xls", ".csv": "csv", ".tsv": "tsv",
    ".doc": "doc", ".ppt": "ppt", ".odt": "odt", ".odp": "odp", ".ods": "ods",
    ".rtf": "rtf", ".epub": "epub", ".rst": "rst", ".org": "org",
    ".xml": "xml", ".json": "json", ".ndjson": "json", ".jsonl": "json",
}  # fmt: skip
SUPPORTED_SUFFIXES = frozenset(_BY_SUFFIX)
# The document types as stored in a chunk's `file_type` (the UI's type filter offers these).
DOC_TYPES = tuple(sorted(set(_BY_SUFFIX.values())))
# Suffixes whose content is checked even though the name is known: Word saves RTF and HTML as
# .doc, and a .doc/.ppt/.xls is often an Office Open XML file with the old name.
_CONTENT_DECIDES = frozenset({".doc", ".xls", ".ppt"})
# Known formats with no parser: never sniffed as text (an SVG read as prose makes useless
# chunks), always rejected with their name.
_UNSUPPORTED_SUFFIXES: dict[str, str] = {
    ".svg": "SVG image", ".ico": "icon", ".p7s": "S/MIME signature", ".p7m": "S/MIME message",
    ".zip": "ZIP archive", ".gz": "gzip archive", ".tgz": "gzip archive", ".bz2": "bzip2 archive",
    ".xz": "xz archive", ".7z": "7-Zip archive", ".rar": "RAR archive", ".tar": "tar archive",
    ".mp3": "audio", ".wav": "audio", ".au": "audio", ".flac": "audio", ".ogg": "audio",
    ".mp4": "video", ".mov": "video", ".avi": "video", ".mkv": "video",
    ".exe": "executable", ".dll": "executable", ".so": "shared library", ".bin": "binary data",
}  # fmt: skip
# Magic bytes -> (document type or None, what it is). Two-byte magics ("BM", "MZ") also start
# ordinary text ("BMW annual report"), so they count only for content that is not text.
_MAGIC: list[tuple[bytes, str | None, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image", "PNG image"), (b"\xff\xd8\xff", "image", "JPEG image"),
    (b"GIF87a", "image", "GIF image"), (b"GIF89a", "image", "GIF image"),
    (b"II*\x00", "image", "TIFF image"), (b"MM\x00*", "image", "TIFF image"), (b"{\\rtf", "rtf", "RTF document"),
    (b"\x1f\x8b", None, "gzip archive"), (b"BZh", None, "bzip2 archive"), (b"\xfd7zXZ\x00", None, "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", None, "7-Zip archive"), (b"Rar!", None, "RAR archive"), (b"\x7fELF", None, "executable"),
    (b"ID3", None, "audio"), (b"OggS", None, "audio"),
]  # fmt: skip
_WEAK_MAGIC: list[tuple[bytes, str | None, str]] = [(b"BM", "image", "BMP image"), (b"MZ", None, "executable")]
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEAD_BYTES = 8192
_HTML_START = re.compile(r"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.I | re.S)
_MAIL_HEADER = re.compile(r"([A-Za-z][A-Za-z0-9-]*):[ \t]")
_MAIL_KNOWN = {"from", "to", "cc", "subject", "date", "received", "return-path", "message-id",
               "mime-version", "delivered-to", "reply-to", "content-type", "sender"}  # fmt: skip


class NotRegularFile(OSError):
    """A FIFO, device, socket or directory: reading it could block forever or have side effects."""


def file_kind(mode: int) -> str:
    """A name for a non-regular file, for operators."""
    kinds = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
             stat.S_IFSOCK: "socket", stat.S_IFDIR: "directory"}  # fmt: skip
    return kinds.get(stat.S_IFMT(mode), "special file")


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The first `limit` bytes (all when None) of a regular file, never blocking on a FIFO.

    The caller has already checked with os.stat; O_NONBLOCK plus fstat closes the race where
    the file is swapped for a FIFO in between.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"not a regular file ({file_kind(mode)})")
        chunks: list[bytes] = []
        left = limit if limit is not None else -1
        while left != 0:
            data = os.read(fd, 1 << 20 if left < 0 else min(left, 1 << 20))
            if not data:
                break
            chunks.append(data)
            left = left - len(data) if left > 0 else left
        return b"".join(chunks)
    finally:
        os.close(fd)


def detect_type(path: Path) -> str | None:
    """The document type ('pdf', 'docx', 'image', 'xlsx', 'csv', 'msg', ... see _BY_SUFFIX);
    None when there is no parser.

    A known extension decides (one stat, no read: cheap on every scan), except the legacy
    Office ones, whose first bytes are checked; a missing or unknown extension (`README`,
    `Apache-2.0`, `notes.v2`) is decided by content. Never blocks on a FIFO.
    """
    suffix = path.suffix.lower()
    try:
        mode = os.stat(path).st_mode
    except OSError:  # gone: the name is all there is (ingest asks for deleted paths' types)
        return _BY_SUFFIX.get(suffix)
    if not stat.S_ISREG(mode):
        return None
    if suffix in _CONTENT_DECIDES:
        sniffed = _sniff(path)[0]
        return sniffed or _BY_SUFFIX[suffix]
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if suffix in _UNSUPPORTED_SUFFIXES:
        return None
    return _sniff(path)[0]


def unsupported_reason(path: Path) -> str:
    """Why detect_type rejects a file, in words an operator can act on ('' if it does not)."""
    suffix = path.suffix.lower()
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"not a regular file ({file_kind(mode)})"
    if suffix in _BY_SUFFIX:
        return ""
    if suffix in _UNSUPPORTED_SUFFIXES:
        return f"unsupported file type '{suffix}' ({_UNSUPPORTED_SUFFIXES[suffix]})"
    doc_type, name = _sniff(path)
    return "" if doc_type else f"unsupported type: {name}"


def _sniff(path: Path) -> tuple[str | None, str]:
    """(type, what it is) from the first bytes of a file whose name says nothing useful."""
    try:
        head = read_bytes(path, _HEAD_BYTES)
    except OSError as exc:
        return None, f"unreadable file ({exc})"
    if not head:
        return None, "empty file of unknown type"
    if b"%PDF-" in head[:1024]:
        return "pdf", "PDF"
    if head.startswith(b"PK\x03\x04"):
        return sniff_zip(path)
    if head.startswith(_OLE_MAGIC):
        return sniff_ole(path)
    for magic, doc_type, name in _MAGIC:
        if head.startswith(magic):
            return doc_type, name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "WebP image"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "image", "HEIC image"
    textual = looks_textual(head)
    for magic, doc_type, name in _WEAK_MAGIC:
        if head.startswith(magic) and not textual:
            return doc_type, name
    if head[:4] == b"RIFF":
        return None, "RIFF media (WAV/AVI)"
    if not textual:
        return None, "binary file of unknown type"
    text = head.decode(detect_encoding(head, complete=False), errors="replace").lstrip("\ufeff")
    if _HTML_START.match(text):
        return "html", "HTML"
    if _looks_like_email(text):
        return "email", "email"
    if _XML_START.match(text):
        return "xml", "XML"
    if _JSON_START.match(text):
        return "json", "JSON"
    return "text", "text"


_XML_START = re.compile(r"^\s*(<\?xml[\s?]|(<!--.*?-->\s*)*<!DOCTYPE\s+\w|<[A-Za-z_][\w.:-]*(\s+[\w:.-]+\s*=\s*[\"'][^<>]*)*\s*/?>\s*<)", re.S)
_JSON_START = re.compile(r'^\s*(\{\s*("|\})|\[\s*(\{|\[|"|-?\d|true|false|null|\]))')
def _looks_like_email(text: str) -> bool:
    """RFC 822 headers from the first line (after an mbox 'From ' line) to the blank line."""
    lines = text.splitlines()
    if lines and lines[0].startswith("From ") and not _MAIL_HEADER.match(lines[0]):
        lines = lines[1:]
    names: set[str] = set()
    for line in lines:
        if not line.strip():
            break
        if line[0] in " \t" and names:
            continue
        match = _MAIL_HEADER.match(line)
        if not match:
            return False
        names.add(match.group(1).lower())
    known = names & _MAIL_KNOWN
    return len(known) >= 2 and bool(known & {"from", "received", "message-id", "return-path", "delivered-to"})


def looks_textual(head: bytes) -> bool:
    """True for text in any common Unicode encoding, including BOM-less UTF-16."""
    if b"\x00" in head:
        for encoding in ("utf-32", "utf-16", "utf-16-le", "utf-16-be"):
            unit = 4 if encoding == "utf-32" else 2
            try:
                decoded = head[: len(head) - len(head) % unit].decode(encoding)
            except UnicodeDecodeError:
                continue
            if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) / len(decoded) > 0.95:
                return True
        return False
    controls = sum(byte < 9 or 13 < byte < 32 for byte in head)
    return controls <= len(head) * 0.01
