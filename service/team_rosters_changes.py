"""Changing the roster records use: an admin's correction of a (say, backfilled) team, and a
late joiner of an evaluation in progress. Both make a new version of the team, lock it, then
relink records to it, in that order: a crash in between leaves a locked version that nothing
links (harmless, like a crashed link; the records keep their old, still valid, version).

A record is relinked by one update whose filter states it is still open and still links a
version of the same team, so a record closed meanwhile keeps its roster: closed records never
change. Every relinked record gets an audit event saying its roster changed while open.
"""

from __future__ import annotations

from documents.base import utcnow
from documents.team_rosters import (
    Evaluation,
    NoteContext,
    ProjectAssessment,
    ProjectTeam,
    TeamMember,
)
from service import audit
from service.aggregates import update_where
from service.context import STAFF_ROLES
from service.errors import Conflict, ValidationFailed
from service.ids import unique_ids
from service.team_rosters import ProjectTeams, RosterService, team_dict
from service.team_rosters_records import Evaluations

RECORD_MODELS = (Evaluation, ProjectAssessment, NoteContext)
ENTITY_TYPES = {Evaluation: "evaluation", ProjectAssessment: "project_assessment",
                NoteContext: "note_context"}


class RosterChanges(RosterService):
    """Corrections and late joiners: new versions that open records move to."""

    def correct(self, team_id, members: list[dict], relink_record_ids=()) -> dict:
        """A new version of the team with `members` (admins). The records named (evaluations,
        assessments, note contexts linking a version of this team) move to it; a closed one
        refuses the whole correction (409 `record_closed`), before anything is written."""
        self.require_admin()
        source = self.team(team_id)
        ids = unique_ids([m["user_id"] for m in members], "members")
        if len(ids) != len(members):
            raise ValidationFailed("members names someone twice.",
                                   {"members": ["Each user_id only once."]})
        self.school_users(ids, "members")
        records = self._records_to_relink(source, relink_record_ids or [])
        now = utcnow()
        roster = [TeamMember(user_id=uid, role=m.get("role"), added_at=now)
                  for uid, m in zip(ids, members, strict=True)]
        team = self._new_version(source, roster)
        if records:
            team = ProjectTeams(self.ctx).lock(team, "corrected: records relinked to it")
        relinked = self._relink(records, team, "correct")
        self.audit("correct", "project_team", team.id,
                   before={"project_team_id": source.id, "version": source.team_version,
                           "member_ids": source.member_ids},
                   after={"version": team.team_version, "member_ids": team.member_ids,
                          "relinked_record_ids": relinked})
        return {"team": team_dict(team, self.names_of(team.member_ids)),
                "relinked_record_ids": relinked}

    def late_joiners(self, evaluation_id, user_ids: list) -> dict:
        """Add students to an open evaluation: a new version of its team with them, locked,
        and the evaluation relinked to it. 409 `evaluation_closed` for a closed one (also
        when it closes while this runs: then the new version stays unused)."""
        self.require_role(STAFF_ROLES)
        evaluation = Evaluations(self.ctx).record(evaluation_id)
        self._refuse_closed(evaluation)
        ids = unique_ids(user_ids, "user_ids")
        self.school_users(ids, "user_ids")
        source = ProjectTeam.objects.for_school(self.school_id).filter(
            id=evaluation.project_team_id).first()
        if source is None:
            raise Conflict("This evaluation links no project team.", code="no_team")
        already = set(ids) & set(source.member_ids)
        if already:
            raise Conflict("Some of these people are in the team already.",
                           code="already_member",
                           details={"user_ids": sorted(str(u) for u in already)})
        now = utcnow()
        roster = [TeamMember(user_id=m.user_id, role=m.role, added_at=m.added_at)
                  for m in source.members] + [TeamMember(user_id=uid, added_at=now)
                                              for uid in ids]
        team = ProjectTeams(self.ctx).lock(self._new_version(source, roster),
                                           f"evaluation {evaluation.id} links to it")
        if not self._relink([(Evaluation, evaluation)], team, "late_joiners",
                            {"user_ids": ids}):
            current = Evaluations(self.ctx).record(evaluation.id)
            self._refuse_closed(current)
            raise Conflict("The evaluation's team changed while this ran; try again.",
                           code="roster_busy")
        return Evaluations(self.ctx).detail(evaluation.id)

    def _new_version(self, source: ProjectTeam, roster: list[TeamMember]) -> ProjectTeam:
        def make(lineage, number, oid):
            now = utcnow()
            return ProjectTeam(
                id=oid, school_id=self.school_id, project_id=source.project_id,
                lineage=lineage, team_version=number, team_id=source.team_id,
                display_name_at_time=source.display_name_at_time, members=roster,
                member_ids=[m.user_id for m in roster], created_at=now, updated_at=now)

        return ProjectTeams(self.ctx).insert_version(source.project_id, source.lineage, make)

    def _records_to_relink(self, source: ProjectTeam, record_ids: list) -> list[tuple]:
        """(model, record) for each id: 422 for ids that are no record linking a version of
        this team, 409 `record_closed` for closed ones. Three reads, one per collection."""
        ids = unique_ids(record_ids, "relink_record_ids")
        if not ids:
            return []
        versions = set(ProjectTeam.objects.for_school(self.school_id).filter(
            project_id=source.project_id, lineage=source.lineage).scalar("id"))
        found = [(model, record) for model in RECORD_MODELS
                 for record in model.objects.for_school(self.school_id).filter(id__in=ids)
                 if record.project_team_id in versions]
        missing = set(ids) - {record.id for _, record in found}
        if missing:
            raise ValidationFailed(
                "relink_record_ids names records that do not link this team.",
                {"relink_record_ids": [f"Not linked to this team: "
                                       f"{', '.join(sorted(map(str, missing)))}."]})
        closed = [str(record.id) for _, record in found if record.status == "closed"]
        if closed:
            raise Conflict("Closed records never change; leave them out.",
                           code="record_closed", details={"record_ids": closed})
        return found

    def _relink(self, records: list[tuple], team: ProjectTeam, action: str,
                extra: dict | None = None) -> list:
        """Move each open record to `team`, one conditional update each (still open, still
        on the version read); answers the ids moved. Audited in one write."""
        moved, events = [], []
        for model, record in records:
            after = update_where(
                model._get_collection(), self.school_id,
                {"_id": record.id, "status": {"$ne": "closed"},
                 "project_team_id": record.project_team_id},
                {"$set": {"project_team_id": team.id, "team_version": team.team_version,
                          "team_name": team.display_name_at_time,
                          "members_version": team.members_version,
                          "member_ids": list(team.member_ids)}},
                projection={"_id": 1})
            if after is None:
                continue
            moved.append(record.id)
            events.append(audit.audit_event(
                self.actor, self.school_id, action, ENTITY_TYPES[model], record.id,
                before={"project_team_id": record.project_team_id,
                        "team_version": record.team_version, "member_ids": record.member_ids},
                after={"project_team_id": team.id, "team_version": team.team_version,
                       "member_ids": team.member_ids, "roster_changed_while_open": True,
                       **(extra or {})}))
        audit.record_many(events)
        return moved

    @staticmethod
    def _refuse_closed(evaluation: Evaluation) -> None:
        if evaluation.status == "closed":
            raise Conflict("This evaluation is closed; its roster never changes.",
                           code="evaluation_closed",
                           details={"evaluation_id": str(evaluation.id)})

