"""Running an import: batches through the kind's importer, and the report of rejected rows.

`rota import` (scripts/importer.py) and the HTTP import jobs (service/import_jobs.py) both
call `run_batches`, which yields after each written batch so the caller can show progress or
record it; a caller resuming a job skips the batches it recorded before.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from pymongo.errors import PyMongoError

from documents.connection import failure_reason
from service.context import SchoolContext
from service.csv_cells import neutralised
from service.errors import DomainError
from service.import_files import ParsedFile, UnusableInput, key_value
from service.imports import REJECTED, STATUSES, ImportKind, Row, RowResult, registry

REPORT_HEADER = ("line", "key", "reason")


class StoppedMidway(Exception):
    """The database failed, or kept changing under a batch, at this line (exit code 3)."""

    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


@dataclass
class BatchDone:
    """One step of a run: batch `index` (0 is the parser's rejections) and its results."""

    index: int
    results: list[RowResult]


def import_kind(name: str) -> ImportKind:
    kinds = registry()
    if name not in kinds:
        raise UnusableInput(f"unknown kind {name!r}; one of: {', '.join(sorted(kinds))}")
    return kinds[name]


def run_batches(kind: ImportKind, ctx: SchoolContext, parsed: ParsedFile, dry_run: bool,
                batch_size: int, skip: int = 0) -> Iterator[BatchDone]:
    """Import the parsed rows batch by batch, yielding each batch's results once written;
    the first `skip` steps are left out (a resumed job recorded them). Whatever fails in a
    batch raises StoppedMidway: what was written stays written, and the importers'
    idempotence makes a re-run complete it."""
    if skip <= 0:
        yield BatchDone(0, list(parsed.rejected))
    line = parsed.rows[0].line if parsed.rows else 0
    try:
        importer = _importer(kind, ctx, parsed.rows, dry_run)
        for index, batch in enumerate(batches_of(parsed.rows, kind.group_by,
                                                 max(1, batch_size)), start=1):
            if index < skip:
                continue
            line = batch[0].line
            results = _run_batch(importer, ctx, batch, dry_run)
            yield BatchDone(index, results)
    except GeneratorExit:
        raise
    except Exception as exc:
        raise StoppedMidway(line) from exc


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


def batches_of(rows: list[Row], group_by: tuple[str, ...], size: int) -> Iterable[list[Row]]:
    """Batches of about `size` rows in file order; rows sharing the `group_by` values are
    gathered into the batch of their group's first row (a group is never split)."""
    if group_by:
        groups: dict[tuple, list[Row]] = {}
        for row in rows:
            groups.setdefault(key_value(row, group_by), []).append(row)
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


def one_line(exc: BaseException | None) -> str:
    """The reason in one line; the exception's type too when it is not a database or domain
    error, whose messages say what happened on their own."""
    if isinstance(exc, PyMongoError | DomainError):
        return failure_reason(exc)
    return failure_reason(f"{type(exc).__name__}: {exc}")


def counts_of(results: Iterable[RowResult]) -> dict[str, int]:
    counts = {status: 0 for status in STATUSES}
    for result in results:
        counts[result.status] += 1
    return counts


def write_report(handle: TextIO, kind: ImportKind, results: Iterable[RowResult],
                 values: dict[int, dict[str, str]]) -> None:
    """The rejected rows: line, key, reason, then the row as read (header-only when none).
    Cells a spreadsheet would run as formulas are neutralised (service/csv_cells.py)."""
    writer = csv.writer(handle)
    writer.writerow((*REPORT_HEADER, *kind.columns))
    for result in sorted(results, key=lambda r: r.line):
        if result.status == REJECTED:
            row = values.get(result.line, {})
            writer.writerow(map(neutralised, (result.line, result.key, result.reason,
                                              *(row.get(c) for c in kind.columns))))
