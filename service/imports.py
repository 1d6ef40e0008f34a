"""The nightly import protocol shared by `rota import` and the modules it feeds.

The command (scripts/importer.py) reads CSV or JSON lines, checks the header, cuts the rows
into batches and hands each batch to the kind's importer; the importer applies the module's
own rules and answers one `RowResult` per row. Importers live with their module's manager
(`service/<area>.py`) and are found through `IMPORTERS` by dotted path, so no module imports
another.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

from service.context import SchoolContext

CREATED, UPDATED, UNCHANGED, REJECTED = "created", "updated", "unchanged", "rejected"


@dataclass
class Row:
    """One input row: its line number in the file (header is line 1) and its values as text
    (empty cells are absent)."""

    line: int
    values: dict[str, str]


@dataclass
class RowResult:
    line: int
    status: str  # CREATED, UPDATED, UNCHANGED or REJECTED
    reason: str | None = None
    key: str | None = None  # the natural key, for the report


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
        importer="service.schools:import_users", exporter="service.schools:export_users"),
    "periods": ImportKind(
        "periods", required=("period_number", "period_name", "start_time", "end_time"),
        importer="service.timetable:import_periods", exporter="service.timetable:export_periods"),
    "assignments": ImportKind(
        "assignments",
        required=("staff", "day_of_week", "period_number", "class_id", "subject"),
        optional=("room_number", "student_count"),
        importer="service.timetable:import_assignments",
        exporter="service.timetable:export_assignments",
        group_by=("staff", "day_of_week", "period_number"),
        notes=["One row per class; rows with the same (staff, day_of_week, period_number) are "
               "the classes of one assignment. `staff` is the staff member's external_id or "
               "email."]),
    "students": ImportKind(
        "students", required=("program", "customer_id", "name"),
        optional=("ability_level", "birth_date", "email"),
        importer="service.weekly_groups:import_students",
        exporter="service.weekly_groups:export_students"),
    "group-memberships": ImportKind(
        "group-memberships", required=("program", "week_number", "group", "customer_id"),
        importer="service.weekly_groups:import_group_memberships",
        exporter="service.weekly_groups:export_group_memberships",
        notes=["`group` is the group's base name; `customer_id` names the program student."]),
}
