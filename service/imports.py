"""The nightly import protocol shared by `rota import` and the modules it feeds.

The engine (service/import_files.py reads, service/import_engine.py batches and reports; used
by `rota import` and by HTTP import jobs alike) reads CSV or JSON lines, checks the header,
rejects rows that lack a required value or repeat a key of the file, cuts the rest into
batches (keeping `group_by` rows together) and hands each batch to the kind's importer; the
importer applies the module's own rules and answers one `RowResult` per row. Importers live
with their module (`service/<area>.py`, or `service/import_<area>.py`); `registry()` below
lists each module's kinds with the functions it imports from that module, so a moved function
is one import to fix.

An importer must be idempotent (upsert by natural key; a row equal to the stored state is
UNCHANGED and writes nothing), must never half-write a row (or a group of rows), must write
in bulk (a constant number of round trips per batch), and must write nothing when `dry_run`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from service.context import SchoolContext

CREATED, UPDATED, UNCHANGED, REJECTED = "created", "updated", "unchanged", "rejected"
STATUSES = (CREATED, UPDATED, UNCHANGED, REJECTED)


@dataclass
class Row:
    """One input row: its line number in the file (header is line 1), its values as text
    (stripped; empty cells are absent) and the columns the file gives it."""

    line: int
    values: dict[str, str]
    # A column the file does not have leaves its field as stored; an empty cell of a column
    # it has clears the field (where the kind allows clearing). Empty: every column (a row
    # built by hand).
    columns: frozenset[str] = frozenset()

    def gives(self, column: str) -> bool:
        """Whether the file says anything about `column` for this row (a value, or empty)."""
        return not self.columns or column in self.columns or column in self.values


@dataclass
class RowResult:
    line: int
    status: str  # CREATED, UPDATED, UNCHANGED or REJECTED
    reason: str | None = None
    key: str | None = None  # the natural key, for the report


def rejected(row: Row, reason: str, key: str | None = None) -> RowResult:
    return RowResult(row.line, REJECTED, reason, key)


class BatchImporter(Protocol):
    """Applies one batch; answers one RowResult per row. Kinds with a `preload` get its state
    as a fourth argument."""

    def __call__(self, ctx: SchoolContext, rows: list[Row], dry_run: bool,
                 *state) -> list[RowResult]:
        ...


# preload(ctx, every row of the file, dry_run) -> the state handed to every batch.
Preload = Callable[[SchoolContext, list[Row], bool], object]
# exporter(ctx) -> the school's rows in the kind's columns, as `rota import` reads them back.
Exporter = Callable[[SchoolContext], Iterable[dict[str, str]]]


@dataclass
class ImportKind:
    """What a kind needs: its columns, its importer and its exporter."""

    name: str
    required: tuple[str, ...]
    importer: BatchImporter
    exporter: Exporter
    optional: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    # Rows sharing these columns always reach the importer in the same batch.
    group_by: tuple[str, ...] = ()
    # Each tuple of columns names one row at most once per file; later repeats are rejected.
    unique: tuple[tuple[str, ...], ...] = ()
    # The module that must be switched on for the school (None: always allowed).
    module: str | None = None
    # Called once with every row of the file before the first batch, for kinds whose lookups
    # would otherwise scan a large collection once per batch.
    preload: Preload | None = None
    # Other names a file may give a column: {"group_base_name": "group"}. The file reader
    # (service/import_files.py) renames them, so importers and reports see only `columns`;
    # a file giving both names of one column is unusable.
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


@functools.cache
def registry() -> dict[str, ImportKind]:
    """Every kind by name. Built on first use, not at import: the modules it names import
    this one for `Row` and `RowResult`."""
    kinds = [*_users_kinds(), *_timetable_kinds(), *_weekly_groups_kinds(),
             *_team_rosters_kinds()]
    return {kind.name: kind for kind in kinds}


def __getattr__(name: str):
    # `IMPORTERS` is the registry under the name the kinds' tests import.
    if name == "IMPORTERS":
        return registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _users_kinds() -> list[ImportKind]:
    from service.import_users import export_users, import_users, preload_users

    return [ImportKind(
        "users", required=("email", "name", "role"), optional=("external_id", "department"),
        importer=import_users, exporter=export_users, preload=preload_users,
        unique=(("email",), ("external_id",)),
        notes=["`role` is school_admin, staff or student. Upserted by `external_id` when given, "
               "else by `email`. An empty `department` clears it; an empty `external_id` keeps "
               "the stored one."])]


def _timetable_kinds() -> list[ImportKind]:
    from service.import_timetable import (
        export_assignments,
        import_assignments,
        preload_assignments,
    )
    from service.timetable import export_periods, import_periods

    return [
        ImportKind(
            "periods", required=("period_number", "period_name", "start_time", "end_time"),
            importer=import_periods, exporter=export_periods,
            unique=(("period_number",),), module="timetable"),
        ImportKind(
            "assignments",
            required=("staff", "day_of_week", "period_number", "class_id", "subject"),
            optional=("room_number", "student_count"),
            importer=import_assignments, exporter=export_assignments,
            preload=preload_assignments,
            # a slot (day, period) is one document: its rows in one batch, one write
            group_by=("day_of_week", "period_number"),
            unique=(("staff", "day_of_week", "period_number", "class_id"),), module="timetable",
            notes=["One row per class; rows with the same (staff, day_of_week, period_number) "
                   "are the classes of one assignment. `staff` is the staff member's "
                   "external_id or email."]),
    ]


def _weekly_groups_kinds() -> list[ImportKind]:
    from service.weekly_groups_import import (
        export_group_memberships,
        export_students,
        import_group_memberships,
        import_students,
    )

    return [
        ImportKind(
            "students", required=("program", "customer_id", "name"),
            optional=("ability_level", "birth_date", "email"),
            importer=import_students, exporter=export_students,
            unique=(("customer_id",),), module="weekly_groups"),
        ImportKind(
            "group-memberships", required=("program", "week_number", "customer_id"),
            optional=("group", "max_size"),
            importer=import_group_memberships, exporter=export_group_memberships,
            # a week's rows in one batch: its capacity is checked on the whole file's moves
            group_by=("program", "week_number"),
            unique=(("program", "week_number", "customer_id"),), module="weekly_groups",
            aliases={"group_base_name": "group"},
            notes=["`group` (or `group_base_name`) is the group's base name (empty: out of "
                   "any group that week); `customer_id` names the program student; "
                   "`max_size` creates a group the program lacks."]),
    ]


def _team_rosters_kinds() -> list[ImportKind]:
    from service.team_rosters_import import (
        export_course_groups,
        export_project_teams,
        import_course_groups,
        import_project_teams,
    )

    return [
        ImportKind(
            "course-groups", required=("group",), optional=("member",),
            importer=import_course_groups, exporter=export_course_groups,
            group_by=("group",), unique=(("group", "member"),), module="team_rosters",
            notes=["One row per member (`member`: external_id or email; empty for a group "
                   "without members); a group's members are replaced by the file's."]),
        ImportKind(
            "project-teams", required=("project", "team"), optional=("member", "role"),
            importer=import_project_teams, exporter=export_project_teams,
            group_by=("project", "team"), unique=(("project", "team", "member"),),
            module="team_rosters",
            notes=["`project` is the project's slug, `team` the team's display name (its "
                   "newest version); a locked team changes by a new version."]),
    ]
