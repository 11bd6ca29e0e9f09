"""Container formats, opened only as far as their directory: which document a ZIP or an OLE
compound file holds, and whether a ZIP is safe to inflate."""

from __future__ import annotations

import zipfile
from pathlib import Path

_ODF_TYPES = {
    b"application/vnd.oasis.opendocument.text": ("odt", "OpenDocument text"),
    b"application/vnd.oasis.opendocument.presentation": ("odp", "OpenDocument presentation"),
    b"application/vnd.oasis.opendocument.spreadsheet": ("ods", "OpenDocument spreadsheet"),
    b"application/epub+zip": ("epub", "EPUB book"),
}


def sniff_zip(path: Path) -> tuple[str | None, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            mimetype = archive.read("mimetype")[:100].strip() if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, RuntimeError):
        return None, "corrupt ZIP archive"
    if any(name.startswith("word/") for name in names):
        return "docx", "Word document"
    if any(name.startswith("ppt/") for name in names):
        return "pptx", "PowerPoint presentation"
    if any(name.startswith("xl/") for name in names):
        return "xlsx", "Excel workbook"
    if mimetype in _ODF_TYPES:
        return _ODF_TYPES[mimetype]
    if mimetype:
        return None, f"ZIP-based file of type {mimetype.decode('ascii', 'replace')}"
    return None, "ZIP archive"


# OLE (Compound File) stream names -> type: the container holds all the legacy Office formats.
_OLE_STREAMS = [("worddocument", "doc", "Word 97-2003 document"), ("workbook", "xls", "Excel 97-2003 workbook"),
                ("book", "xls", "Excel 5.0 workbook"), ("powerpoint document", "ppt", "PowerPoint 97-2003 presentation"),
                ("__properties_version1.0", "msg", "Outlook message"),
                ("encryptedpackage", "encrypted", "password-protected Office document")]  # fmt: skip


def sniff_ole(path: Path) -> tuple[str | None, str]:
    """Which legacy Office format an OLE compound file holds, from its top-level stream names."""
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            names = {"/".join(entry).lower() for entry in ole.listdir(streams=True, storages=False)}
    except (OSError, ValueError, IndexError, TypeError) as exc:  # olefile raises assorted errors on corrupt files
        return None, f"corrupt OLE compound file ({type(exc).__name__})"
    for stream, doc_type, name in _OLE_STREAMS:
        if stream in names:
            return doc_type, name
    return None, "OLE compound file of unknown kind"


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
