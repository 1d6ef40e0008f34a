"""The nightly import protocol shared by `rota import` and the modules it feeds.

The command (scripts/importer.py) reads CSV or JSON lines, checks the header, rejects rows
that lack a required value or repeat a key of the file, cuts the rest into batches (keeping
`group_by` rows together) and hands each batch to the kind's importer; the importer applies
the module's own rules and answers one `RowResult` per row. Importers live with their module
(`service/<area>.py`, or `service/import_<area>.py`) and are found through `IMPORTERS` by
dotted path, so no module imports another.

An importer must be idempotent (upsert by natural key; a row equal to the stored state is
UNCHANGED and writes nothing), must never half-write a row (or a group of rows), must write
in bulk (a constant number of round trips per batch), and must write nothing when `dry_run`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

from service.context import SchoolContext

CREATED, UPDATED, UNCHANGED, REJECTED = "created", "updated", "unchanged", "rejected"
STATUSES = (CREATED, UPDATED, UNCHANGED, REJECTED)


@dataclass
class Row:
    """One input row: its line number in the file (header is line 1) and its values as text
    (stripped; empty cells are absent)."""

    line: int
    values: dict[str, str]


@dataclass
class RowResult:
    line: int
    status: str  # CREATED, UPDATED, UNCHANGED or REJECTED
    reason: str | None = None
    key: str | None = None  # the natural key, for the report


def rejected(row: Row, reason: str, key: str | None = None) -> RowResult:
    return RowResult(row.line, REJECTED, reason, key)


@dataclass
class ImportKind:
    """What a kind needs: its columns, and `import_batch` / `export_rows` by dotted path."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    importer: str = ""  # "module:function(ctx, rows: list[Row], dry_run: bool) -> list[RowResult]"
    exporter: str = ""  # "module:function(ctx) -> Iterable[dict[str, str]]" (same columns)
    notes: list[str] = field(default_factory=list)
    # Rows sharing these columns always reach the importer in the same batch.
    group_by: tuple[str, ...] = ()
    # Each tuple of columns names one row at most once per file; later repeats are rejected.
    unique: tuple[tuple[str, ...], ...] = ()
    # The module that must be switched on for the school (None: always allowed).
    module: str | None = None
    # Optional "module:function(ctx, rows: list[Row], dry_run: bool) -> state", called once
    # with every row of the file before the first batch; the importer is then called as
    # importer(ctx, batch, dry_run, state). For kinds whose lookups would otherwise scan a
    # large collection once per batch (FerretDB filters most queries without an index).
    preload: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional

    def load(self, which: str):
        module, _, name = getattr(self, which).partition(":")
        return getattr(importlib.import_module(module), name)


class BatchImporter(Protocol):
    def __call__(self, ctx: SchoolContext, rows: list[Row], dry_run: bool) -> list[RowResult]:
        ...


IMPORTERS: dict[str, ImportKind] = {
    "users": ImportKind(
        "users", required=("email", "name", "role"),
        optional=("external_id", "department"),
        importer="service.import_users:import_users",
        exporter="service.import_users:export_users",
        preload="service.import_users:preload_users",
        unique=(("email",), ("external_id",)),
        notes=["`role` is school_admin, staff or student. Upserted by `external_id` when given, "
               "else by `email`. An empty `department` clears it; an empty `external_id` keeps "
               "the stored one."]),
    "periods": ImportKind(
        "periods", required=("period_number", "period_name", "start_time", "end_time"),
        importer="service.timetable:import_periods", exporter="service.timetable:export_periods",
        unique=(("period_number",),), module="timetable"),
    "assignments": ImportKind(
        "assignments",
        required=("staff", "day_of_week", "period_number", "class_id", "subject"),
        optional=("room_number", "student_count"),
        importer="service.import_timetable:import_assignments",
        exporter="service.import_timetable:export_assignments",
        preload="service.import_timetable:preload_assignments",
        group_by=("staff", "day_of_week", "period_number"),
        unique=(("staff", "day_of_week", "period_number", "class_id"),), module="timetable",
        notes=["One row per class; rows with the same (staff, day_of_week, period_number) are "
               "the classes of one assignment. `staff` is the staff member's external_id or "
               "email."]),
    "students": ImportKind(
        "students", required=("program", "customer_id", "name"),
        optional=("ability_level", "birth_date", "email"),
        importer="service.weekly_groups:import_students",
        exporter="service.weekly_groups:export_students",
        unique=(("customer_id",),), module="weekly_groups"),
    "group-memberships": ImportKind(
        "group-memberships", required=("program", "week_number", "group", "customer_id"),
        importer="service.weekly_groups:import_group_memberships",
        exporter="service.weekly_groups:export_group_memberships",
        unique=(("program", "week_number", "customer_id"),), module="weekly_groups",
        notes=["`group` is the group's base name; `customer_id` names the program student."]),
}
