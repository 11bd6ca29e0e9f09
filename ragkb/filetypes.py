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
import zipfile
from pathlib import Path

from ragkb.charsets import detect_encoding

# extension -> document type; SUPPORTED_SUFFIXES is what the UI offers for upload
_BY_SUFFIX: dict[str, str] = {
    ".pdf": "pdf", ".docx": "docx", ".pptx": "pptx", ".html": "html", ".htm": "html",
    ".md": "md", ".markdown": "md", ".txt": "text", ".text": "text", ".eml": "email",
}  # fmt: skip
SUPPORTED_SUFFIXES = frozenset(_BY_SUFFIX)
# Known formats with no parser yet: never sniffed as text (a CSV or an SVG read as prose
# makes useless chunks), always rejected with their name.
_UNSUPPORTED_SUFFIXES: dict[str, str] = {
    ".png": "PNG image", ".jpg": "JPEG image", ".jpeg": "JPEG image", ".gif": "GIF image",
    ".bmp": "BMP image", ".tif": "TIFF image", ".tiff": "TIFF image", ".webp": "WebP image",
    ".svg": "SVG image", ".ico": "icon", ".heic": "HEIC image",
    ".xlsx": "Excel workbook", ".xls": "Excel workbook", ".xlsm": "Excel workbook",
    ".doc": "Word 97-2003 document", ".ppt": "PowerPoint 97-2003 presentation",
    ".odt": "OpenDocument text", ".ods": "OpenDocument spreadsheet", ".odp": "OpenDocument presentation",
    ".rtf": "RTF document", ".epub": "EPUB book", ".msg": "Outlook message",
    ".csv": "CSV table", ".tsv": "TSV table", ".json": "JSON data", ".xml": "XML data",
    ".zip": "ZIP archive", ".gz": "gzip archive", ".tgz": "gzip archive", ".bz2": "bzip2 archive",
    ".xz": "xz archive", ".7z": "7-Zip archive", ".rar": "RAR archive", ".tar": "tar archive",
    ".mp3": "audio", ".wav": "audio", ".au": "audio", ".flac": "audio", ".ogg": "audio",
    ".mp4": "video", ".mov": "video", ".avi": "video", ".mkv": "video",
    ".exe": "executable", ".dll": "executable", ".so": "shared library", ".bin": "binary data",
}  # fmt: skip
_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"GIF8", "GIF image"),
    (b"BM", "BMP image"), (b"II*\x00", "TIFF image"), (b"MM\x00*", "TIFF image"),
    (b"RIFF", "RIFF media (WebP/WAV/AVI)"), (b"\x1f\x8b", "gzip archive"), (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"), (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"), (b"Rar!", "RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office (OLE) file"), (b"{\\rtf", "RTF document"),
    (b"\x7fELF", "executable"), (b"MZ", "executable"), (b"ID3", "audio"), (b"OggS", "audio"),
]  # fmt: skip
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
    """'pdf', 'docx', 'pptx', 'html', 'md', 'text' or 'email'; None when there is no parser.

    A known extension decides (one stat, no read: cheap on every scan); a missing or unknown one
    (`README`, `Apache-2.0`, `notes.v2`) is decided by content. Never blocks on a FIFO.
    """
    suffix = path.suffix.lower()
    try:
        mode = os.stat(path).st_mode
    except OSError:  # gone: the name is all there is (ingest asks for deleted paths' types)
        return _BY_SUFFIX.get(suffix)
    if not stat.S_ISREG(mode):
        return None
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
        return _sniff_zip(path)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return None, name
    if not looks_textual(head):
        return None, "binary file of unknown type"
    text = head.decode(detect_encoding(head), errors="replace").lstrip("\ufeff")
    if _HTML_START.match(text):
        return "html", "HTML"
    if _looks_like_email(text):
        return "email", "email"
    return "text", "text"


def _sniff_zip(path: Path) -> tuple[str | None, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None, "corrupt ZIP archive"
    if any(name.startswith("word/") for name in names):
        return "docx", "Word document"
    if any(name.startswith("ppt/") for name in names):
        return "pptx", "PowerPoint presentation"
    if any(name.startswith("xl/") for name in names):
        return None, "Excel workbook (XLSX)"
    if "mimetype" in names:
        return None, "OpenDocument or EPUB file"
    return None, "ZIP archive"


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

# A member this large and this compressible is no document: real OOXML parts compress at most
# ~40:1 (measured on 31 DOCX/PPTX of the shared corpus), a bomb's at 1000:1.
_BOMB_RATIO = 200
_BOMB_MEMBER_BYTES = 50 * 1024 * 1024


def zip_bomb_reason(path: Path, max_unzipped_mb: float) -> str | None:
    """Why a zip container must not be opened, from its central directory alone.

    Declared sizes suffice: Python's zipfile (used by python-docx/python-pptx) stops reading a
    member at its declared size and fails the CRC check, so a member cannot expand beyond it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return f"corrupt zip container: {exc}"
    total = sum(member.file_size for member in members)
    if total > max_unzipped_mb * 1024 * 1024:
        return (
            f"decompresses to {total / 1048576:.0f} MB (limit {max_unzipped_mb:g} MB, "
            "RAGKB_MAX_UNZIPPED_MB): possible zip bomb"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _BOMB_MEMBER_BYTES and ratio > _BOMB_RATIO:
            return (
                f"member {member.filename} decompresses to {member.file_size / 1048576:.0f} MB "
                f"at {ratio:.0f}:1 (limit {_BOMB_RATIO}:1 above {_BOMB_MEMBER_BYTES >> 20} MB): possible zip bomb"
            )
    return None
