"""Spreadsheets and delimited text as tables: XLSX (openpyxl), XLS (xlrd), ODS (its XML), CSV
and TSV (the csv module).

Each sheet becomes table blocks, one per run of non-empty rows (a blank row separates two
tables on one sheet), with the sheet name as the section and the sheet number as the page, so
a citation names both. A row is one line, cells joined by ' | ': the chunker then splits a long
table between rows and repeats its first row (the header) in every piece.

Why not unstructured's partition_xlsx: it loads whole sheets into pandas DataFrames, and its
text for a table runs all cells together with no row boundary to split at.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ragkb.blocks import Block, ParseError

# A run of empty columns this wide ends the used part of a row: sheets often carry formatting
# out to column XFD (16,384), and ODS repeats empty cells by count.
_MAX_EMPTY_RUN = 256
_MAX_COLUMNS = 1024


def xlsx_blocks(path: Path) -> list[Block]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
        raise ParseError(f"corrupt or unreadable Excel workbook: {type(exc).__name__}: {str(exc)[:200]}") from exc
    try:
        sheets = [(ws.title, ws.iter_rows(values_only=True)) for ws in workbook.worksheets]
        return _sheet_blocks((name, (list(row) for row in rows)) for name, rows in sheets)
    finally:
        workbook.close()


def xls_blocks(path: Path) -> list[Block]:
    import xlrd

    try:
        book = xlrd.open_workbook(str(path), on_demand=True)
    except xlrd.biffh.XLRDError as exc:
        if "encrypt" in str(exc).lower():
            raise ParseError("encrypted Excel workbook: password-protected; save it without a password to ingest it") from exc
        raise ParseError(f"corrupt or unsupported Excel 97-2003 workbook: {exc}") from exc
    except (OSError, ValueError, IndexError, AssertionError) as exc:
        raise ParseError(f"corrupt Excel 97-2003 workbook: {type(exc).__name__}: {str(exc)[:200]}") from exc
    try:

        def rows(sheet: Any) -> Iterator[list[Any]]:
            for r in range(sheet.nrows):
                yield [_xls_value(cell, book.datemode) for cell in sheet.row(r)]

        return _sheet_blocks((book.sheet_by_index(i).name, rows(book.sheet_by_index(i))) for i in range(book.nsheets))
    finally:
        book.release_resources()


def _xls_value(cell: Any, datemode: int) -> Any:
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell.value
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    if cell.ctype in (xlrd.XL_CELL_ERROR, xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return None
    return cell.value


def ods_blocks(path: Path) -> list[Block]:
    from ragkb.opendoc import ods_sheets

    return _sheet_blocks(ods_sheets(path))


def delimited_blocks(text: str, tab: bool) -> list[Block]:
    """CSV or TSV (already decoded): a CSV's delimiter is sniffed (',', ';', tab, '|')."""
    delimiter = "\t" if tab else _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return _sheet_blocks([(None, reader)])


def _delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _sheet_blocks(sheets: Iterable[tuple[str | None, Iterable[list[Any]]]]) -> list[Block]:
    blocks: list[Block] = []
    for number, (name, rows) in enumerate(sheets, start=1):
        section = " ".join(name.split())[:200] if name else None
        page = number if name is not None else None
        table: list[list[str]] = []
        for row in rows:
            cells = _row_cells(row)
            if cells:
                table.append(cells)
            elif table:
                _close(table, page, section, blocks)
                table = []
        if table:
            _close(table, page, section, blocks)
    return blocks


def _close(table: list[list[str]], page: int | None, section: str | None, blocks: list[Block]) -> None:
    """A table without the empty columns all its rows start with; a lone cell above a wider
    table is its caption (a title), so the header row repeated in each piece is the real one."""
    indent = min(next(i for i, cell in enumerate(cells) if cell) for cells in table)
    lines = [" | ".join(cells[indent:]) for cells in table]
    if len(lines) > 1 and len(table[0]) - indent == 1 and len(table[1]) - indent > 1:
        blocks.append(Block(lines.pop(0), page, section, "title"))
    blocks.append(Block("\n".join(lines), page, section, "table"))


def _row_cells(row: Iterable[Any]) -> list[str]:
    """The row's cell texts up to the last non-empty one; [] for an empty row."""
    cells: list[str] = []
    empty_run = 0
    for value in row:
        text = _cell_text(value)
        empty_run = 0 if text else empty_run + 1
        if empty_run > _MAX_EMPTY_RUN or len(cells) >= _MAX_COLUMNS:
            break
        cells.append(text)
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.10g}"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return " ".join(str(value).split())
