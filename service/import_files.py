"""Reading an import file: bytes to checked rows, the same for `rota import` and HTTP jobs.

Text is UTF-8 (with or without a byte order mark) or, when it is not valid UTF-8, Windows-1252
/ Latin-1 as spreadsheets on Windows save it (detected with charset-normalizer); anything else
is refused with a message naming the problem. A CSV file's delimiter (`,`, `;` or tab) is
sniffed from its header line. Each row carries the columns the file gives it (`Row.columns`),
so an importer leaves the fields of absent optional columns as they are. A column named by
one of the kind's aliases (`ImportKind.aliases`) is read as the column it stands for.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import charset_normalizer

from service.csv_cells import restored
from service.imports import REJECTED, ImportKind, Row, RowResult, rejected

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")
DELIMITERS = (",", ";", "\t")
# Single-byte encodings charset-normalizer may name for Western European text: its guess
# among them is unreliable on short files, and Windows-1252 is what spreadsheets write.
SINGLE_BYTE_WESTERN = ("cp125", "latin", "iso8859", "mac_roman", "ascii")


class UnusableInput(Exception):
    """The input cannot be imported at all (CLI exit code 2, HTTP 422); the message says why."""


@dataclass
class ParsedFile:
    rows: list[Row]
    rejected: list[RowResult] = field(default_factory=list)
    # Every row's values by line, for the report (rows that failed to parse have none).
    values: dict[int, dict[str, str]] = field(default_factory=dict)
    encoding: str = "utf-8"
    delimiter: str | None = None

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.rejected)


def parse(data: bytes, name: str, kind: ImportKind) -> ParsedFile:
    """Parse the file named `name` (its suffix says the format), check its columns, reject
    rows lacking required values or repeating a key of the file. Raises UnusableInput for a
    file that cannot be imported at all."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in CSV_SUFFIXES:
        reader = _read_csv
    elif suffix in JSON_LINES_SUFFIXES:
        reader = _read_json_lines
    else:
        raise UnusableInput(f"unknown file type {suffix or '(none)'!r}: use .csv or .jsonl")
    text, encoding = decode(data, name)
    parsed = reader(text, name, kind)
    parsed.encoding = encoding
    parsed.values = {row.line: row.values for row in parsed.rows}
    parsed.rows = _reject_incomplete(parsed, kind)
    parsed.rows = _reject_repeated_keys(parsed, kind)
    return parsed


def decode(data: bytes, name: str) -> tuple[str, str]:
    """The file's text and the encoding it was read with."""
    if data.startswith(codecs.BOM_UTF8):
        return _utf8(data[len(codecs.BOM_UTF8):], name, "utf-8 with a byte order mark")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        not_utf8 = exc
    if b"\x00" in data:
        raise UnusableInput(f"{name} is not a text file (it holds NUL bytes: UTF-16, or a "
                            f"spreadsheet's own format?); save it as CSV UTF-8")
    guess = charset_normalizer.from_bytes(data).best()
    if guess is None or not guess.encoding.startswith(SINGLE_BYTE_WESTERN):
        found = f" (it looks like {guess.encoding})" if guess else ""
        raise UnusableInput(f"{name} is neither UTF-8 nor Windows-1252/Latin-1 text{found}: "
                            f"byte 0x{data[not_utf8.start]:02x} at offset {not_utf8.start} "
                            f"is not valid UTF-8; save it as CSV UTF-8")
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _utf8(data: bytes, name: str, what: str) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), what
    except UnicodeDecodeError as exc:
        raise UnusableInput(f"{name} starts with a UTF-8 byte order mark but byte "
                            f"0x{data[exc.start]:02x} at offset {exc.start + 3} is not "
                            f"valid UTF-8") from None


def canonical_columns(kind: ImportKind, columns: Iterable[str], source: str) -> list[str]:
    """The file's column names with each alias replaced by the column it stands for; a file
    that names one column twice that way is unusable."""
    columns = list(columns)
    for alias, column in kind.aliases.items():
        if alias in columns and column in columns:
            raise UnusableInput(f"{source}: columns {column} and {alias} are the same column "
                                f"({alias} is another name for {column}): keep one")
    return [kind.aliases.get(column, column) for column in columns]


def _check_columns(kind: ImportKind, columns: Iterable[str], source: str) -> None:
    columns = set(columns)
    missing = [c for c in kind.required if c not in columns]
    unknown = sorted(columns - set(kind.columns))
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)}")
    if problems:
        raise UnusableInput(f"{source}: {'; '.join(problems)} (the {kind.name} columns are "
                            f"{', '.join(kind.required)} and optionally "
                            f"{', '.join(kind.optional) or 'nothing else'})")


def sniff_delimiter(header_line: str) -> str:
    """The delimiter the header line uses most (a header names at least two columns)."""
    return max(DELIMITERS, key=header_line.count)


def _read_csv(text: str, name: str, kind: ImportKind) -> ParsedFile:
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [column.strip() for column in next(reader, [])]
    if not any(header):
        raise UnusableInput(f"{name} is empty: the first line must name the columns")
    if len(set(header)) != len(header):
        raise UnusableInput(f"{name}: a column is named twice in the header")
    header = canonical_columns(kind, header, name)
    _check_columns(kind, header, name)
    parsed = ParsedFile(rows=[], delimiter=delimiter)
    columns = frozenset(header)
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            _add_csv_row(parsed, line, header, columns, cells)
        line = reader.line_num + 1
    return parsed


def _add_csv_row(parsed: ParsedFile, line: int, header: list[str], columns: frozenset[str],
                 cells: list[str]) -> None:
    if len(cells) > len(header):
        parsed.rejected.append(RowResult(line, REJECTED,
                                         f"{len(cells)} cells but {len(header)} columns"))
        return
    # restored: the quote `rota export` put before a leading -, =, +, @ goes (csv_cells.py).
    parsed.rows.append(Row(line, {name: restored(cell.strip()) for name, cell
                                  in zip(header, cells, strict=False) if cell.strip()},
                           columns))


def _read_json_lines(text: str, name: str, kind: ImportKind) -> ParsedFile:
    parsed = ParsedFile(rows=[])
    seen_columns: set[str] = set()
    for line, line_text in enumerate(text.splitlines(), start=1):
        if not line_text.strip():
            continue
        document = _json_object(line, line_text, parsed)
        if document is not None:
            seen_columns.update(document)
            values = {kind.aliases.get(key, key): _json_text(value)
                      for key, value in document.items()}
            parsed.rows.append(Row(line, {k: v for k, v in values.items() if v},
                                   frozenset(values)))
    if parsed.rows:
        # No header here: a column no line has is missing, a key no kind knows is unknown,
        # and a column and its alias both used (on any lines) make the file unusable.
        _check_columns(kind, canonical_columns(kind, sorted(seen_columns), name), name)
    return parsed


def _json_object(line: int, text: str, parsed: ParsedFile) -> dict | None:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        parsed.rejected.append(RowResult(line, REJECTED, f"not valid JSON ({exc.msg})"))
        return None
    if not isinstance(document, dict):
        parsed.rejected.append(RowResult(line, REJECTED, "not a JSON object"))
        return None
    nested = [k for k, v in document.items() if isinstance(v, dict | list)]
    if nested:
        parsed.rejected.append(RowResult(line, REJECTED, f"{nested[0]} must be a plain value"))
        return None
    return {str(k): v for k, v in document.items()}


def _json_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _reject_incomplete(parsed: ParsedFile, kind: ImportKind) -> list[Row]:
    complete = []
    for row in parsed.rows:
        absent = [c for c in kind.required if c not in row.values]
        if absent:
            parsed.rejected.append(rejected(row, f"missing value for {', '.join(absent)}"))
        else:
            complete.append(row)
    return complete


def key_text(row: Row, columns: tuple[str, ...]) -> str:
    return "/".join(row.values.get(c, "") for c in columns)


def key_value(row: Row, columns: tuple[str, ...]) -> tuple | None:
    if any(c not in row.values for c in columns):
        return None
    # Emails and staff references compare without case, as the importers match them.
    return tuple(row.values[c].lower() if c in ("email", "staff") else row.values[c]
                 for c in columns)


def _reject_repeated_keys(parsed: ParsedFile, kind: ImportKind) -> list[Row]:
    first_lines: dict[tuple, int] = {}
    kept = []
    for row in parsed.rows:
        repeat = None
        for columns in kind.unique:
            value = key_value(row, columns)
            if value is None:
                continue
            first = first_lines.setdefault((columns, value), row.line)
            if first != row.line:
                repeat = (columns, first)
                break
        if repeat:
            columns, first = repeat
            parsed.rejected.append(rejected(
                row, f"duplicate key in file: {', '.join(columns)} already on line {first}",
                key_text(row, columns)))
        else:
            kept.append(row)
    return kept
