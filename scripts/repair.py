"""`rota repair`: settle what a crash between two steps of a request can leave behind.

Safe at any time, meant for the nightly cron next to the imports: it only touches what is
older than any request can run (an alteration or exchange accept stopped half-way, a
lesson move that left two copies), adds what a
crash left out (a program's week documents, a group's weeks, a week change's move log),
and audits what it fixed.
"""

from __future__ import annotations

from documents.accounts import School
from service.context import SYSTEM
from service.tenancy import school_context
from service.timetable_alterations import AlterationRequests
from service.timetable_edits import LessonEdits
from service.timetable_exchanges import ExchangeRequests
from service.timetable_exports import TimetableViews
from service.weekly_groups import WeeklyGroups


def repair_school(school: School) -> tuple[list[str], list[str]]:
    """Run every repair of the modules switched on for this school: lines saying what was
    fixed, and lines naming what only an admin can resolve."""
    ctx = school_context(SYSTEM, school.id)
    fixed, to_resolve = [], []
    if "timetable" in ctx.modules:
        settled = AlterationRequests(ctx).repair_interrupted()
        fixed += [f"alteration request {r.id} settled as {r.status}" for r in settled]
        exchanged = ExchangeRequests(ctx).repair_interrupted()
        fixed += [f"exchange request {r.id} settled as {r.status}" for r in exchanged]
        fixed += LessonEdits(ctx).settle_interrupted_moves()
        to_resolve += [f"double booking: {c['kind']} {c['key']!r} on day {c['day_of_week']} "
                       f"period {c['period_number']}: assignments {', '.join(c['assignment_ids'])}"
                       for c in TimetableViews(ctx).double_bookings()]
    if "weekly_groups" in ctx.modules:
        fixed += WeeklyGroups(ctx).repair()
    return fixed, to_resolve


def run_repair(school_code: str | None, echo) -> int:
    """Exit code 0, or 1 when something is left for an admin, 2 for an unknown school."""
    schools = School.objects(code=school_code) if school_code else School.objects.order_by("code")
    if school_code and not schools.count():
        echo(f"error: no school with code {school_code!r}")
        return 2
    fixed_total = unresolved_total = 0
    for school in schools:
        fixed, to_resolve = repair_school(school)
        fixed_total += len(fixed)
        unresolved_total += len(to_resolve)
        echo(f"{school.code}: {len(fixed)} fixed, {len(to_resolve)} to resolve")
        for line in fixed:
            echo(f"  fixed: {line}")
        for line in to_resolve:
            echo(f"  to resolve: {line}")
    echo(f"{fixed_total} fixed, {unresolved_total} to resolve in {schools.count()} school(s)")
    return 1 if unresolved_total else 0
