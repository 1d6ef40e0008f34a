"""`rota backfill-project-teams`: give old evaluations, project assessments and note contexts
(which name a course group but no project team) the project team they were about.

The work, and why it is safe to re-run and to crash, is service/team_rosters_backfill.py;
this runs it for each school (or the one named) and prints the report.
"""

from __future__ import annotations

from collections.abc import Callable

from documents.accounts import School
from service.context import SYSTEM
from service.team_rosters_backfill import BackfillReport, TeamBackfill
from service.tenancy import school_context

RULE = "=" * 78
EXIT_OK, EXIT_UNKNOWN_SCHOOL = 0, 2


def run_backfill(dry_run: bool, school_code: str | None, echo: Callable = print) -> int:
    """The command's body (the database is connected). Returns the exit code."""
    schools = School.objects(code=school_code) if school_code else School.objects
    school_ids = list(schools.scalar("id"))
    if school_code and not school_ids:
        echo(f"No school with code {school_code!r}.")
        return EXIT_UNKNOWN_SCHOOL
    title = "BACKFILLING PROJECT TEAMS" + (" (DRY RUN: nothing is written)" if dry_run else "")
    echo(f"{RULE}\n{title}\n{RULE}")
    report = BackfillReport()
    for school_id in school_ids:
        report += TeamBackfill(school_context(SYSTEM, school_id)).backfill(dry_run)
    print_report(report, dry_run, echo)
    return EXIT_OK


def print_report(report: BackfillReport, dry_run: bool, echo: Callable) -> None:
    existed = f" ({report.teams_existing} existed already)" if report.teams_existing else ""
    echo("[1/6] Finding distinct project-group combinations from evaluations...")
    echo(f"  Found {report.evaluation_combinations} evaluation-group combinations")
    echo("[2/6] Finding distinct project-group combinations from project assessments...")
    echo(f"  Found {report.assessment_combinations} assessment-group combinations")
    echo("[3/6] Creating project_team records...")
    echo(f"  Found {report.unique_combinations} unique project-group combinations")
    echo(f"  {'Would create' if dry_run else 'Created'} {report.teams_created} project_team "
         f"records{existed}")
    echo(f"  Added {report.members_added} team member records")
    echo(f"  Used inference for {report.teams_inferred} teams (no group_members found)")
    if report.teams_inferred:
        echo("  Review them: GET /api/v1/schools/<school_id>/projects/<project_id>/teams"
             "?backfill_source=inferred; correct one with POST "
             "/api/v1/schools/<school_id>/project-teams/<id>/correct")
    for step, collection, label, linked in (
            (4, "evaluations", "evaluations", report.linked_evaluations),
            (5, "project_assessments", "project assessments", report.linked_assessments),
            (6, "project_note_contexts", "project notes contexts",
             report.linked_note_contexts)):
        echo(f"[{step}/6] Linking {collection} to project_teams...")
        echo(f"  {'Would link' if dry_run else 'Linked'} {linked} {label}")
    echo(f"{RULE}\n{'DRY RUN' if dry_run else 'BACKFILL'} COMPLETE\n{RULE}")
