"""`rota import` and `rota export`: files in and out of a school, through the kinds' importers.

The framework reads the whole file first (CSV with a header row, or JSON lines), so the header
is checked, keys repeated within the file are found and the rows of one group (an assignment's
classes) are gathered before anything is written. Then it hands batches to the kind's importer
(service/imports.py), shows progress, and writes a report of the rejected rows.

Exit codes: 0 every row taken, 1 some rows rejected, 2 unusable input (unknown kind, school,
file type or columns; missing file; module switched off), 3 the database is unreachable, or
the run stopped midway: the database failed, or kept changing under a batch, or a batch failed
otherwise (what was written stays written; re-running the same file completes the import).
Export: 0 written, 2 unknown kind or school, 3 the database is unreachable or failed.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pymongo.errors import PyMongoError

from documents.accounts import School
from documents.connection import failure_reason
from service.context import SYSTEM, SchoolContext
from service.csv_cells import UTF8_BOM, neutralised, neutralised_row, restored
from service.errors import DomainError, ModuleDisabled
from service.imports import REJECTED, STATUSES, ImportKind, Row, RowResult, registry, rejected
from service.tenancy import school_context

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, EXIT_STOPPED = 0, 1, 2, 3
CSV_SUFFIXES = (".csv",)
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")
PROGRESS_INTERVAL_SECONDS = 2.0


class UnusableInput(Exception):
    """The input cannot be imported at all (exit code 2); the message says why."""


class StoppedMidway(Exception):
    """The database failed, or kept changing under a batch, at this line (exit code 3)."""

    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


@dataclass
class ParsedFile:
    rows: list[Row]
    rejected: list[RowResult] = field(default_factory=list)
    # Every row's values by line, for the report (rows that failed to parse have none).
    values: dict[int, dict[str, str]] = field(default_factory=dict)


# ---------------------------------------------------------------------------- import

def run_import(kind: str, file: Path, school_code: str, dry_run: bool = False,
               report_path: Path | None = None, batch_size: int = 1000,
               out: TextIO | None = None) -> int:
    """Import FILE into the school; print progress and a summary; return the exit code."""
    out = out or sys.stdout
    try:
        import_kind = _kind(kind)
        ctx = _school(school_code, import_kind.module)
        parsed = read_file(Path(file), import_kind)
    except UnusableInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except PyMongoError as exc:
        print(f"error: {_database_failed(exc)}; nothing was imported", file=sys.stderr)
        return EXIT_STOPPED
    started = time.monotonic()
    progress = Progress(len(parsed.rows) + len(parsed.rejected), out)
    try:
        results = _import_rows(import_kind, ctx, parsed, dry_run, batch_size, progress)
    except StoppedMidway as exc:
        progress.close()
        print(f"error: the import stopped at line {exc.line} ({_one_line(exc.__cause__)}); "
              f"the batches before it are imported. Re-run the same file to complete the "
              f"import.", file=sys.stderr)
        return EXIT_STOPPED
    progress.close()
    report = Path(report_path) if report_path else _default_report(Path(file))
    write_report(report, import_kind, results, parsed.values)
    _print_summary(out, import_kind, file, school_code, results, time.monotonic() - started,
                   dry_run, report)
    return EXIT_REJECTED if any(r.status == REJECTED for r in results) else EXIT_OK


def _import_rows(kind: ImportKind, ctx: SchoolContext, parsed: ParsedFile, dry_run: bool,
                 batch_size: int, progress: Progress) -> list[RowResult]:
    """Every row's result: the parser's rejections, then the importer's, batch by batch."""
    results = list(parsed.rejected)
    progress.advance(len(parsed.rejected))
    line = parsed.rows[0].line if parsed.rows else 0
    try:
        importer = _importer(kind, ctx, parsed.rows, dry_run)
        for batch in batches_of(parsed.rows, kind.group_by, max(1, batch_size)):
            line = batch[0].line
            results.extend(_run_batch(importer, ctx, batch, dry_run))
            progress.advance(len(batch))
    except Exception as exc:
        # Whatever fails in a batch (the database, a driver that could not read its reply,
        # an importer's bug) stops the run with exit code 3, never a traceback: what was
        # written stays written and the importers' idempotence makes a re-run complete it.
        raise StoppedMidway(line) from exc
    return results


def _one_line(exc: BaseException) -> str:
    """The reason in one line; the exception's type too when it is not a database or domain
    error, whose messages say what happened on their own."""
    if isinstance(exc, PyMongoError | DomainError):
        return failure_reason(exc)
    return failure_reason(f"{type(exc).__name__}: {exc}")


def _database_failed(exc: PyMongoError) -> str:
    return f"the database is unreachable or failed ({_one_line(exc)})"


def _kind(name: str) -> ImportKind:
    kinds = registry()
    if name not in kinds:
        raise UnusableInput(f"unknown kind {name!r}; one of: {', '.join(sorted(kinds))}")
    return kinds[name]


def _school(code: str, module: str | None) -> SchoolContext:
    school = School.objects(code=code).only("id").first()
    if school is None:
        raise UnusableInput(f"no school with code {code!r}")
    try:
        return school_context(SYSTEM, school.id, module=module)
    except ModuleDisabled:
        raise UnusableInput(f"the {module} module is switched off for school {code}") from None


def _importer(kind: ImportKind, ctx: SchoolContext, rows: list[Row], dry_run: bool):
    """The kind's batch importer, given the kind's preloaded state when it has one."""
    importer = kind.importer
    if not kind.preload:
        return importer
    state = kind.preload(ctx, rows, dry_run)
    return functools.wraps(importer)(
        lambda ctx, batch, dry_run: importer(ctx, batch, dry_run, state))


def _run_batch(importer, ctx: SchoolContext, batch: list[Row], dry_run: bool) -> list[RowResult]:
    answered = importer(ctx, batch, dry_run)
    by_line = {result.line: result for result in answered}
    missing = [row.line for row in batch if row.line not in by_line]
    if missing or any(result.status not in STATUSES for result in answered):
        raise RuntimeError(f"importer {importer.__name__} did not answer every row "
                           f"(lines without a result: {missing[:10]})")
    return [by_line[row.line] for row in batch]


# ---------------------------------------------------------------------------- reading

def read_file(path: Path, kind: ImportKind) -> ParsedFile:
    """Parse the file, check its columns, reject rows lacking required values or repeating a
    key of the file. Raises UnusableInput for a file that cannot be imported at all."""
    if not path.is_file():
        raise UnusableInput(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        parsed = _read_csv(path, kind)
    elif suffix in JSON_LINES_SUFFIXES:
        parsed = _read_json_lines(path, kind)
    else:
        raise UnusableInput(f"unknown file type {suffix or '(none)'!r}: use .csv or .jsonl")
    parsed.values = {row.line: row.values for row in parsed.rows}
    parsed.rows = _reject_incomplete(parsed, kind)
    parsed.rows = _reject_repeated_keys(parsed, kind)
    return parsed


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


def _read_csv(path: Path, kind: ImportKind) -> ParsedFile:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not any(header):
            raise UnusableInput(f"{path} is empty: the first line must name the columns")
        if len(set(header)) != len(header):
            raise UnusableInput(f"{path}: a column is named twice in the header")
        _check_columns(kind, header, str(path))
        parsed = ParsedFile(rows=[])
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                _add_csv_row(parsed, line, header, cells)
            line = reader.line_num + 1
        return parsed


def _add_csv_row(parsed: ParsedFile, line: int, header: list[str], cells: list[str]) -> None:
    if len(cells) > len(header):
        parsed.rejected.append(RowResult(line, REJECTED,
                                         f"{len(cells)} cells but {len(header)} columns"))
        return
    # restored: the quote `rota export` put before a leading -, =, +, @ goes (csv_cells.py).
    parsed.rows.append(Row(line, {name: restored(cell.strip()) for name, cell
                                  in zip(header, cells, strict=False) if cell.strip()}))


def _read_json_lines(path: Path, kind: ImportKind) -> ParsedFile:
    parsed = ParsedFile(rows=[])
    seen_columns: set[str] = set()
    with open(path, encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            values = _json_values(line, text, parsed)
            if values is not None:
                seen_columns.update(values)
                parsed.rows.append(Row(line, values))
    if parsed.rows:
        # No header here: a column no line has is missing, a key no kind knows is unknown.
        _check_columns(kind, seen_columns, str(path))
    return parsed


def _json_values(line: int, text: str, parsed: ParsedFile) -> dict[str, str] | None:
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
    return {str(k): _json_text(v) for k, v in document.items() if _json_text(v)}


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


def _key_value(row: Row, columns: tuple[str, ...]) -> tuple | None:
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
            value = _key_value(row, columns)
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


# ---------------------------------------------------------------------------- batching

def batches_of(rows: list[Row], group_by: tuple[str, ...], size: int) -> Iterable[list[Row]]:
    """Batches of about `size` rows in file order; rows sharing the `group_by` values are
    gathered into the batch of their group's first row (a group is never split)."""
    if group_by:
        groups: dict[tuple, list[Row]] = {}
        for row in rows:
            groups.setdefault(_key_value(row, group_by), []).append(row)
        units = list(groups.values())
    else:
        units = [[row] for row in rows]
    batch: list[Row] = []
    for unit in units:
        if batch and len(batch) + len(unit) > size:
            yield batch
            batch = []
        batch.extend(unit)
    if batch:
        yield batch


# ---------------------------------------------------------------------------- output

class Progress:
    """A progress bar on a terminal; plain lines every few seconds otherwise (cron logs)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO):
        self.total, self.done, self.stream = total, 0, stream
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.started = self.last_line = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.interactive:
            self._draw(now)
        elif now - self.last_line >= PROGRESS_INTERVAL_SECONDS and self.done < self.total:
            self.last_line = now
            print(f"progress: {self._status(now)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.interactive:
            self._draw(time.monotonic())
            print(file=self.stream, flush=True)

    def _draw(self, now: float) -> None:
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        print(f"\r[{bar}] {self._status(now)}", end="", file=self.stream, flush=True)

    def _status(self, now: float) -> str:
        percent = 100 * self.done // self.total if self.total else 100
        rate = self.done / max(now - self.started, 1e-6)
        return f"{self.done}/{self.total} rows ({percent}%), {rate:,.0f} rows/s"


def _default_report(file: Path) -> Path:
    return file.with_name(file.name + ".report.csv")


def write_report(path: Path, kind: ImportKind, results: list[RowResult],
                 values: dict[int, dict[str, str]]) -> None:
    """The rejected rows: line, key, reason, then the row as read (header-only when none)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("line", "key", "reason", *kind.columns))
        for result in sorted(results, key=lambda r: r.line):
            if result.status == REJECTED:
                row = values.get(result.line, {})
                writer.writerow(map(neutralised, (result.line, result.key, result.reason,
                                                  *(row.get(c) for c in kind.columns))))


def _print_summary(out: TextIO, kind: ImportKind, file, school_code: str,
                   results: list[RowResult], seconds: float, dry_run: bool,
                   report: Path) -> None:
    counts = {status: 0 for status in STATUSES}
    for result in results:
        counts[result.status] += 1
    rate = len(results) / max(seconds, 1e-6)
    mode = " (dry run: nothing written)" if dry_run else ""
    print(f"{kind.name} from {file} into school {school_code}{mode}", file=out)
    print(" / ".join(f"{status} {counts[status]}" for status in STATUSES)
          + f"  ({len(results)} rows in {seconds:.1f} s, {rate:,.0f} rows/s)", file=out)
    if counts[REJECTED]:
        print(f"rejected rows are listed in {report}", file=out)


# ---------------------------------------------------------------------------- export

def run_export(kind: str, school_code: str, output: Path | None = None,
               bom: bool = False) -> int:
    """Write the school's KIND as CSV in the import's columns (after a UTF-8 byte order mark
    with `bom`, for spreadsheets); return the exit code."""
    try:
        import_kind = _kind(kind)
        ctx = _school(school_code, import_kind.module)
        rows = import_kind.exporter(ctx)
        if output is None:
            write_csv(sys.stdout, import_kind, rows, bom)
        else:
            with open(output, "w", newline="", encoding="utf-8") as handle:
                write_csv(handle, import_kind, rows, bom)
    except UnusableInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except PyMongoError as exc:
        print(f"error: {_database_failed(exc)}; the export is incomplete", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK


def write_csv(handle: TextIO, kind: ImportKind, rows: Iterable[dict[str, str]],
              bom: bool = False) -> None:
    """Cells that a spreadsheet would run as formulas are neutralised (service/csv_cells.py);
    the import reads them back as they were."""
    if bom:
        handle.write(UTF8_BOM)
    writer = csv.DictWriter(handle, fieldnames=kind.columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(neutralised_row({c: row.get(c) for c in kind.columns}))
