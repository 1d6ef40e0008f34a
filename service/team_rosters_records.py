"""Evaluations, project assessments and note contexts: each links one project team version
of its project, locks it (service/team_rosters.py `ProjectTeams.lock`), and records the roster
it locked. Listing shows each record's members with names and roles (two reads per page)."""

from __future__ import annotations

from bson import ObjectId

from documents.base import utcnow
from documents.team_rosters import Evaluation, NoteContext, ProjectAssessment, ProjectTeam
from service.aggregates import update_where
from service.context import STAFF_ROLES
from service.errors import NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.pagination import Page, paginate
from service.team_rosters import ProjectTeams, RosterService
from service.team_rosters_deletion import project_archived


def record_dict(record, team: ProjectTeam | None, names: dict) -> dict:
    """A linked record as the API shows it; `members` is its locked roster with names and
    the roles the team version gave them."""
    roles = {m.user_id: m.role for m in team.members} if team else {}
    return {"id": record.id, "project_id": record.project_id,
            "project_team_id": record.project_team_id, "title": record.title,
            "status": record.status, "closed_at": record.closed_at,
            "team_version": record.team_version,
            "team_name": record.team_name, "members_version": record.members_version,
            "member_ids": record.member_ids,
            "members": [{"user_id": uid, "name": names.get(uid), "role": roles.get(uid)}
                        for uid in record.member_ids],
            "created_at": record.created_at}


class TeamLinkedRecords(RosterService):
    """Evaluations, project assessments and note contexts: each links one team version of
    its project, locks it, and records the roster it locked."""

    model = None
    what = ""
    entity_type = ""

    def create(self, project_id, project_team_id, title: str):
        self.require_role(STAFF_ROLES)
        project = self.body_project(project_id)
        team = ProjectTeam.objects.for_school(self.school_id).filter(
            id=field_object_id(project_team_id, "project_team_id")).first()
        if team is None or team.project_id != project.id:
            raise ValidationFailed("project_team_id is not a team of this project.",
                                   {"project_team_id": ["Not a team of this project."]},
                                   code="team_not_in_project")
        record_id = ObjectId()
        # Team first: dying before the record is saved leaves only a locked team (harmless).
        locked = ProjectTeams(self.ctx).lock(team, f"{self.what} {record_id} links to it")
        record = self.model(
            id=record_id, school_id=self.school_id, project_id=project.id,
            project_team_id=locked.id, title=title, team_version=locked.team_version,
            team_name=locked.display_name_at_time, members_version=locked.members_version,
            member_ids=list(locked.member_ids)).save(force_insert=True)
        if self.project_is_archived(project.id):
            # archived after the lock: the record goes again (the team stays locked, harmless)
            self.model.objects.for_school(self.school_id).filter(id=record.id).delete()
            raise project_archived(project.id)
        self.audit("create", self.entity_type, record.id,
                   after={"project_team_id": locked.id, "title": title,
                          "members_version": locked.members_version})
        return record_dict(record, locked, self.names_of(record.member_ids))

    def visible(self):
        """Students see the records whose locked roster includes them."""
        records = self.model.objects.for_school(self.school_id)
        if self.is_student:
            records = records.filter(member_ids=self.actor.user_id)
        return records

    def list(self, project_id=None, project_team_id=None, status: str | None = None,
             student_id=None, page: int = 1, page_size: int = 50) -> Page:
        """Newest first. `student_id`: the records whose roster includes that student, each
        with the team version and members the student was evaluated with."""
        records = self.visible()
        if project_id:
            records = records.filter(project_id=object_id(project_id, "project"))
        if project_team_id:
            records = records.filter(project_team_id=object_id(project_team_id, "team"))
        if student_id:
            records = records.filter(member_ids=object_id(student_id, "student"))
        if status:
            records = records.filter(status=status)
        found = paginate(records.order_by("-created_at", "-id"), page, page_size)
        found.items = self.present(found.items)
        return found

    def detail(self, record_id) -> dict:
        return self.present([self.record(record_id)])[0]

    def record(self, record_id):
        record = self.visible().filter(id=object_id(record_id, self.what)).first()
        if record is None:
            raise NotFound(f"No {self.what} with id {record_id!r}.")
        return record

    def present(self, records: list) -> list[dict]:
        """The records with their locked rosters' names and roles: two reads in all."""
        teams = {team.id: team for team in ProjectTeam.objects.for_school(self.school_id).filter(
            id__in=list({r.project_team_id for r in records if r.project_team_id})).only(
            "id", "members")}
        names = self.names_of(uid for r in records for uid in r.member_ids)
        return [record_dict(r, teams.get(r.project_team_id), names) for r in records]

    def close(self, record_id):
        """Idempotent: only the first close sets `closed_at`."""
        self.require_role(STAFF_ROLES)
        record = self.record(record_id)
        closed = update_where(self.model._get_collection(), self.school_id,
                              {"_id": record.id, "status": {"$ne": "closed"}},
                              {"$set": {"status": "closed", "closed_at": utcnow()}})
        if closed is None:
            # closed by an earlier call: show when
            return self.detail(record.id)
        self.audit("close", self.entity_type, record.id,
                   before={"status": record.status}, after={"status": "closed"})
        return self.present([self.model._from_son(closed)])[0]


class Evaluations(TeamLinkedRecords):
    model = Evaluation
    what = "evaluation"
    entity_type = "evaluation"


class ProjectAssessments(TeamLinkedRecords):
    model = ProjectAssessment
    what = "project assessment"
    entity_type = "project_assessment"


class NoteContexts(TeamLinkedRecords):
    model = NoteContext
    what = "note context"
    entity_type = "note_context"
