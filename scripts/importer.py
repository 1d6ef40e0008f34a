"""`rota import` and `rota export`: files in and out of a school, through the kinds' importers.

The engine reads the whole file first (service/import_files.py: CSV with a header row, or JSON
lines), so the header is checked, keys repeated within the file are found and the rows of one
group (an assignment's classes) are gathered before anything is written. Then it hands batches
to the kind's importer (service/import_engine.py); this command shows progress and writes the
report of the rejected rows. HTTP import jobs (service/import_jobs.py) use the same engine.

Exit codes: 0 every row taken, 1 some rows rejected, 2 unusable input (unknown kind, school,
file type or columns; missing file; module switched off), 3 the database is unreachable, or
the run stopped midway: the database failed, or kept changing under a batch, or a batch failed
otherwise (what was written stays written; re-running the same file completes the import).
Export: 0 written, 2 unknown kind or school, 3 the database is unreachable or failed.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from pymongo.errors import PyMongoError

from documents.accounts import School
from service.context import SYSTEM, SchoolContext
from service.csv_cells import UTF8_BOM, neutralised_row
from service.errors import ModuleDisabled
from service.import_engine import (
    StoppedMidway,
    batches_of,
    counts_of,
    one_line,
    run_batches,
)
from service.import_engine import import_kind as _kind
from service.import_engine import write_report as write_report_rows
from service.import_files import ParsedFile, UnusableInput, parse
from service.imports import REJECTED, STATUSES, ImportKind, RowResult
from service.tenancy import school_context

__all__ = ["batches_of"]  # the tests' and benches' name for the engine's batching

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, EXIT_STOPPED = 0, 1, 2, 3
PROGRESS_INTERVAL_SECONDS = 2.0


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
        print(f"error: the import stopped at line {exc.line} ({one_line(exc.__cause__)}); "
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
    results: list[RowResult] = []
    for done in run_batches(kind, ctx, parsed, dry_run, batch_size):
        results.extend(done.results)
        progress.advance(len(done.results))
    return results


def _database_failed(exc: PyMongoError) -> str:
    return f"the database is unreachable or failed ({one_line(exc)})"


def _school(code: str, module: str | None) -> SchoolContext:
    school = School.objects(code=code).only("id").first()
    if school is None:
        raise UnusableInput(f"no school with code {code!r}")
    try:
        return school_context(SYSTEM, school.id, module=module)
    except ModuleDisabled:
        raise UnusableInput(f"the {module} module is switched off for school {code}") from None


# ---------------------------------------------------------------------------- reading

def read_file(path: Path, kind: ImportKind) -> ParsedFile:
    """Parse the file (service/import_files.py). Raises UnusableInput for a file that cannot
    be imported at all."""
    if not path.is_file():
        raise UnusableInput(f"no such file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableInput(f"cannot read {path}: {exc.strerror}") from None
    return parse(data, str(path), kind)


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
        write_report_rows(handle, kind, results, values)


def _print_summary(out: TextIO, kind: ImportKind, file, school_code: str,
                   results: list[RowResult], seconds: float, dry_run: bool,
                   report: Path) -> None:
    counts = counts_of(results)
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
