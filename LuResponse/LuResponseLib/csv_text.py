"""Turning the bytes of a CSV file into text and cells: encoding, delimiter, decimal comma.

Tables come from Excel on European and US machines, from R, from hospital systems. This module
reads what they write, or refuses it with the file and the line:

* encodings: UTF-8 (with or without byte-order mark), UTF-16 (with BOM, or without BOM when the
  NUL pattern shows it), Windows-1252 (cp1252, what Excel writes on Western European Windows)
  when the file is not valid UTF-8 — with a note; anything else is refused naming the first
  undecodable byte and its line;
* delimiter: ``,``, or ``;`` / tab when the header has those and no comma (Excel's export in
  locales with a decimal comma);
* decimal comma: in a ``;``- or tab-separated file, a cell such as ``101,802`` is the number
  101.802 (with a note); in a comma-separated file it cannot be told from two cells, and rows
  with more cells than the header get a one-line hint;
* quoting is strict: an unterminated or misplaced quote is an error on its line, never a file
  read as one giant cell;
* a cell longer than :data:`MAX_CELL_CHARS` is an error (not a ``csv.Error`` traceback).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

from .errors import CohortTableError, TableProblem

MAX_CELL_CHARS = 100_000
MAX_FILE_BYTES = 256 * 1024 * 1024
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")


def _line_of(raw: bytes, pos: int) -> int:
    return raw[:pos].count(b"\n") + 1


def decode_table_bytes(raw: bytes, source: str, notes: list[str]) -> str:
    """The text of a table file (see module doc); a note is added for non-UTF-8 encodings."""
    if raw.startswith(codecs.BOM_UTF8):
        enc = "utf-8-sig"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = "utf-16"
    elif b"\x00" in raw[:4096]:
        head = raw[:4096]
        if head[1::2].count(0) > 0.4 * len(head[1::2]) and head[0::2].count(0) < 0.1 * len(head[0::2]):
            enc = "utf-16-le"
        elif head[0::2].count(0) > 0.4 * len(head[0::2]) and head[1::2].count(0) < 0.1 * len(head[1::2]):
            enc = "utf-16-be"
        else:
            pos = raw.index(b"\x00")
            raise CohortTableError(source, [TableProblem(_line_of(raw, pos), None,
                                                         "NUL byte: this is not a text (CSV) file")])
    else:
        enc = "utf-8"
    try:
        text = raw.decode(enc)
    except UnicodeDecodeError as exc:
        if enc != "utf-8":
            raise CohortTableError(source, [TableProblem(None, None, f"not valid {enc.upper()} text ({exc.reason} at "
                                                                     f"byte {exc.start}); save the file as UTF-8")]) from None
        line = _line_of(raw, exc.start)
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as exc2:
            raise CohortTableError(source, [TableProblem(
                _line_of(raw, exc2.start), None,
                f"neither UTF-8 nor Windows-1252 text (byte 0x{raw[exc2.start]:02x}); save the file as UTF-8")]) from None
        notes.append(f"{source}: not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); read as Windows-1252 "
                     "(cp1252) — check accented names, or save the file as UTF-8")
    if "\x00" in text:
        raise CohortTableError(source, [TableProblem(text[:text.index("\x00")].count("\n") + 1, None,
                                                     "NUL character: this is not a text (CSV) file")])
    return text


def _header_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def detect_delimiter(text: str) -> str:
    """``,`` unless the header line has ``;`` (or a tab) and no comma."""
    first = _header_line(text)
    if "," not in first and ";" in first:
        return ";"
    if "," not in first and "\t" in first:
        return "\t"
    return ","


def read_table_cells(path: str | Path, notes: list[str] | None = None):
    """``(header, [(line number, cells)], delimiter)`` of a CSV file with every cell stripped.

    Blank lines are skipped; quoting problems, over-long cells and undecodable bytes raise
    :class:`CohortTableError` naming the file and line. ``notes`` collects what was assumed
    (encoding, decimal comma)."""
    from LuDosimetryLib.results.result_set import csv_unquote_text

    notes = notes if notes is not None else []
    path = Path(path)
    source = str(path)
    try:
        if not path.is_file():
            what = "not found" if not path.exists() else "is not a regular file (a folder, FIFO or device)"
            raise FileNotFoundError(f"table {what}: {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CohortTableError(source, [TableProblem(None, None, f"{path.stat().st_size} bytes: larger than "
                                                                     f"{MAX_FILE_BYTES // 1024 ** 2} MiB")])
        raw = path.read_bytes()
    except ValueError as exc:  # NUL in the path
        raise FileNotFoundError(f"table path unusable: {str(path)[:200]!r} ({exc})") from None
    text = decode_table_bytes(raw, source, notes)
    delimiter = detect_delimiter(text)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(MAX_CELL_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = None
    out: list[tuple[int, list[str]]] = []
    decimal_commas = 0
    last_line = 0
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                msg = str(exc)
                if "field larger" in msg:
                    msg = f"a cell longer than {MAX_CELL_CHARS} characters"
                elif "end of data" in msg or "EOF" in msg:
                    msg = (f"a quote (\") opened in the row starting on line {last_line + 1} is never closed: the rest "
                           "of the file would be one cell")
                else:
                    msg = f"misplaced quote ({msg}); a quote inside a cell must be doubled (\"\")"
                raise CohortTableError(source, [TableProblem(reader.line_num, None, msg)]) from None
            row_line, last_line = last_line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            cells = [csv_unquote_text(c.strip()) for c in cells]
            if header is None:
                header = cells
                continue
            if delimiter != ",":
                for i, c in enumerate(cells):
                    if _DECIMAL_COMMA.match(c):
                        cells[i] = c.replace(",", ".")
                        decimal_commas += 1
            out.append((row_line, cells))
    finally:
        csv.field_size_limit(old_limit)
    if decimal_commas:
        notes.append(f"{source}: '{delimiter}'-separated with {decimal_commas} decimal comma(s) (e.g. 101,8): read as "
                     "decimal points")
    return header, out, delimiter
