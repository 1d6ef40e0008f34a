"""`rota backfill-project-teams`: give old evaluations, project assessments and note contexts
(which name a course group but no project team) the project team they were about.

One team per distinct (school, project, group): members copied from the group, or, when the
group has none (or is gone), inferred from the records' participants (`backfill_source:
"inference"`). The teams are locked (records link to them) and the records are linked.

Safe to re-run and crash-safe: a backfilled team has the natural key (project,
lineage "backfill:<group id>", version 1) under a unique index, so inserting it twice fails
and is skipped; records are linked only while they have no project team. A second run, or
a run after a crash midway, finds only what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bson import ObjectId
from pymongo.errors import BulkWriteError

from documents.accounts import School, User
from documents.base import utcnow
from documents.team_rosters import (
    CourseGroup,
    Evaluation,
    NoteContext,
    ProjectAssessment,
    ProjectTeam,
)
from service import audit
from service.context import SYSTEM

RULE = "=" * 78
LOCK_REASON = "backfill: records made before project teams link to it"
EXIT_OK, EXIT_UNKNOWN_SCHOOL = 0, 2
DUPLICATE_KEY = 11000


def backfill_lineage(group_id) -> str:
    return f"backfill:{group_id}"


@dataclass
class Combo:
    """One (project, group) that legacy records name, and their participants."""

    school_id: ObjectId
    project_id: ObjectId
    group_id: ObjectId
    participant_ids: list[ObjectId] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return self.school_id, self.project_id, self.group_id


@dataclass
class TeamPlan:
    combo: Combo
    name: str
    member_ids: list[ObjectId]
    source: str  # "backfill" (group members) or "inference" (participants)


class Backfill:
    def __init__(self, school_ids: list[ObjectId], dry_run: bool, echo: Callable):
        self.school_ids = school_ids
        self.dry_run = dry_run
        self.echo = echo
        self.combos: dict[tuple, Combo] = {}

    def run(self) -> None:
        title = "BACKFILLING PROJECT TEAMS" + (" (DRY RUN: nothing is written)"
                                              if self.dry_run else "")
        self.echo(f"{RULE}\n{title}\n{RULE}")
        self.echo("[1/6] Finding distinct project-group combinations from evaluations...")
        self.echo(f"  Found {self.collect(Evaluation)} evaluation-group combinations")
        self.echo("[2/6] Finding distinct project-group combinations from project "
                  "assessments...")
        self.echo(f"  Found {self.collect(ProjectAssessment)} assessment-group combinations")
        self.collect(NoteContext)
        self.echo("[3/6] Creating project_team records...")
        self.create_teams()
        teams = self.teams_by_combo()
        for step, model, label in ((4, Evaluation, "evaluations"),
                                   (5, ProjectAssessment, "project assessments"),
                                   (6, NoteContext, "project notes contexts")):
            self.echo(f"[{step}/6] Linking {model._get_collection_name()} to project_teams...")
            verb = "Would link" if self.dry_run else "Linked"
            self.echo(f"  {verb} {self.link(model, teams)} {label}")
        self.echo(f"{RULE}\n{'DRY RUN' if self.dry_run else 'BACKFILL'} COMPLETE\n{RULE}")

    def unlinked(self, model):
        return model.objects(school_id__in=self.school_ids, project_team_id=None,
                             group_id__ne=None, project_id__ne=None)

    def collect(self, model) -> int:
        """Remember the (project, group) pairs of `model`'s unlinked records; count them."""
        seen = set()
        records = self.unlinked(model).only("school_id", "project_id", "group_id",
                                            "participant_ids").batch_size(10000)
        for record in records:
            combo = Combo(record.school_id, record.project_id, record.group_id)
            combo = self.combos.setdefault(combo.key, combo)
            combo.participant_ids.extend(record.participant_ids or [])
            seen.add(combo.key)
        return len(seen)

    def existing_teams(self) -> dict[tuple, ProjectTeam]:
        lineages = [backfill_lineage(c.group_id) for c in self.combos.values()]
        teams = ProjectTeam.objects(school_id__in=self.school_ids, lineage__in=lineages,
                                    version=1).batch_size(10000)
        return {(t.school_id, t.project_id, t.team_id): t for t in teams}

    def create_teams(self) -> None:
        self.echo(f"  Found {len(self.combos)} unique project-group combinations")
        existing = self.existing_teams()
        plans = self.plan([c for key, c in self.combos.items() if key not in existing])
        created = plans if self.dry_run else self.insert(plans)
        verb = "Would create" if self.dry_run else "Created"
        self.echo(f"  {verb} {len(created)} project_team records"
                  + (f" ({len(existing)} existed already)" if existing else ""))
        self.echo(f"  Added {sum(len(p.member_ids) for p in created)} team member records")
        inferred = sum(p.source == "inference" for p in created)
        self.echo(f"  Used inference for {inferred} teams (no group_members found)")

    def plan(self, combos: list[Combo]) -> list[TeamPlan]:
        """Members from the group, else from the participants; only users of the school."""
        groups = {g.id: g for g in CourseGroup.objects(
            school_id__in=self.school_ids, id__in=[c.group_id for c in combos])}
        wanted = {uid for c in combos for uid in c.participant_ids}
        wanted |= {uid for g in groups.values() for uid in g.member_ids}
        users = {(u.school_id, u.id) for u in User.objects(
            school_id__in=self.school_ids, id__in=list(wanted)).only("id", "school_id")}
        plans = []
        for combo in combos:
            group = groups.get(combo.group_id)
            from_group = [u for u in (group.member_ids if group else [])
                          if (combo.school_id, u) in users]
            inferred = [u for u in dict.fromkeys(combo.participant_ids)
                        if (combo.school_id, u) in users]
            plans.append(TeamPlan(
                combo, group.name if group else f"Group {combo.group_id}",
                from_group or inferred, "backfill" if from_group else "inference"))
        return plans

    def insert(self, plans: list[TeamPlan]) -> list[TeamPlan]:
        """Insert the missing teams in one unordered bulk insert; one that exists already
        (a concurrent or crashed run made it) fails on the natural key and is skipped.
        Returns the plans this run inserted."""
        if not plans:
            return []
        now = utcnow()
        docs = [self.team_of(plan, now) for plan in plans]
        try:
            ProjectTeam._get_collection().insert_many(docs, ordered=False)
            skipped = set()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            skipped = {error["index"] for error in errors}
        created = [(plan, doc) for i, (plan, doc) in enumerate(zip(plans, docs, strict=True))
                   if i not in skipped]
        audit.record_many([audit.audit_event(
            SYSTEM, plan.combo.school_id, "backfill", "project_team", doc["_id"],
            after={"project_id": plan.combo.project_id, "team_id": plan.combo.group_id,
                   "member_ids": plan.member_ids, "backfill_source": plan.source})
            for plan, doc in created])
        return [plan for plan, _ in created]

    @staticmethod
    def team_of(plan: TeamPlan, now) -> dict:
        combo = plan.combo
        return {
            "_id": ObjectId(), "school_id": combo.school_id, "project_id": combo.project_id,
            "lineage": backfill_lineage(combo.group_id), "version": 1,
            "team_id": combo.group_id, "display_name_at_time": plan.name,
            "members": [{"user_id": uid, "role": None, "added_at": now}
                        for uid in plan.member_ids],
            "member_ids": plan.member_ids, "members_version": 0, "locked": True,
            "locked_at": now, "locked_reason": LOCK_REASON, "backfill_source": plan.source,
            "created_at": now, "updated_at": now}

    def teams_by_combo(self) -> dict[tuple, ProjectTeam]:
        return {} if self.dry_run else self.existing_teams()

    def link(self, model, teams: dict[tuple, ProjectTeam]) -> int:
        """Link every unlinked record of `model` to its combo's team (only if still
        unlinked, so a re-run links nothing twice)."""
        if self.dry_run:
            return self.unlinked(model).count()
        linked: dict[ObjectId, int] = {}
        for team in teams.values():
            linked[team.school_id] = linked.get(team.school_id, 0) + self.link_team(model, team)
        audit.record_many([audit.audit_event(
            SYSTEM, school_id, "backfill_link", model._get_collection_name(), None,
            after={"linked": count}) for school_id, count in linked.items() if count])
        return sum(linked.values())

    @staticmethod
    def link_team(model, team: ProjectTeam) -> int:
        """One update per team (a maintenance run writes; it need not be one round trip)."""
        return model._get_collection().update_many(
            {"school_id": team.school_id, "project_id": team.project_id,
             "group_id": team.team_id, "project_team_id": None},
            {"$set": {"project_team_id": team.id, "team_version": team.version,
                      "team_name": team.display_name_at_time,
                      "members_version": team.members_version,
                      "member_ids": list(team.member_ids)}}).modified_count


def run_backfill(dry_run: bool, school_code: str | None, echo: Callable = print) -> int:
    """The command's body (the database is connected). Returns the exit code."""
    schools = School.objects(code=school_code) if school_code else School.objects
    school_ids = [school.id for school in schools.only("id")]
    if school_code and not school_ids:
        echo(f"No school with code {school_code!r}.")
        return EXIT_UNKNOWN_SCHOOL
    Backfill(school_ids, dry_run, echo).run()
    return EXIT_OK
