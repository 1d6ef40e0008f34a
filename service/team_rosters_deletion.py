"""Deleting project teams: one team that nothing links, or every team of a project being
deleted (service/projects.py calls `ProjectTeamsDeletion.start` and `.finish`).

A linked team is locked (linking locks the team first, then writes the record), and a lock
never lifts, so every delete here matches only `locked: False`: a team locked a moment before
stays, a team deleted a moment before cannot be locked (the lock's filter matches nothing).
The one exception: a team locked by a link that died before writing its record. Nothing links
it, so once its lock is older than any link takes (`CRASHED_LINK_AFTER`) and no record names
it, it goes like an unlocked one.

A project's teams go in three steps, each safe to crash after:
1. a `ProjectTeamsClosing` marker for the project (and its sub-projects): a team created from
   now on sees it right after its insert and deletes itself again (409 `project_deleting`);
2. every unlocked team of the projects is deleted; the locked ones stay, and if there are
   any the marker goes and the delete answers 409 `project_has_teams` naming them;
3. once the project document is gone, the marker goes (`finish`).
A crash after 1 or 2 leaves the marker: deleting the project again completes (the marker is
re-used), and until then creating a team for it answers 409 `project_deleting`.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo import UpdateOne

from documents.base import utcnow
from documents.projects import Project
from documents.team_rosters import (
    Evaluation,
    NoteContext,
    ProjectAssessment,
    ProjectTeam,
    ProjectTeamsClosing,
)
from service import audit, preconditions
from service.base import SchoolService
from service.context import STAFF_ROLES
from service.errors import Conflict, NotFound
from service.ids import object_id

LINKING_MODELS = (Evaluation, ProjectAssessment, NoteContext)
# A link writes its record milliseconds after locking the team; a lock this old with no record
# is one whose link died in between.
CRASHED_LINK_AFTER = timedelta(minutes=5)


def project_archived(project_id) -> Conflict:
    """An archived project's teams are read-only (service/projects.py flags them)."""
    return Conflict("The project is archived: its teams are read-only.",
                    code="project_archived", details={"project_id": str(project_id)})


class ProjectTeamsDeletion(SchoolService):
    """Deleting teams that nothing links: one by id, or all of a project's."""

    def delete_team(self, team_id) -> None:
        """Delete one version of a team; 409 `team_linked` when a record links (locks) it,
        409 `project_archived` when its project is archived."""
        self.require_role(STAFF_ROLES)
        oid = object_id(team_id, "project team")
        teams = ProjectTeam._get_collection()
        expected = preconditions.guard(oid)  # If-Match: the version in the delete's filter
        before = teams.find_one_and_delete(
            {"_id": oid, "school_id": self.school_id, "locked": False,
             "archived": {"$ne": True}, **expected})
        if before is None and self._lock_left_by_a_crash([oid]):
            before = teams.find_one_and_delete({"_id": oid, "school_id": self.school_id,
                                                "archived": {"$ne": True},
                                                **self._stale_lock(), **expected})
        if before is None:
            team = ProjectTeam.objects.for_school(self.school_id).filter(id=oid).first()
            if team is None:
                raise NotFound(f"No project team with id {team_id!r}.")
            preconditions.check(oid, team.version)  # 412 before explaining a lock
            if team.archived:
                raise project_archived(team.project_id)
            raise Conflict(
                f"Team '{team.display_name_at_time}' (version {team.team_version}) is linked: "
                f"{team.locked_reason or 'a record links to it'}; it cannot be deleted.",
                code="team_linked", details={"project_team_id": str(team.id)})
        self.audit("delete", "project_team", oid,
                   before={"project_id": before["project_id"], "lineage": before["lineage"],
                           "version": before["team_version"],
                           "member_ids": before.get("member_ids", [])})

    def start(self, project_ids: list) -> int:
        """Steps 1 and 2 above: answers how many teams were deleted, or raises 409
        `project_has_teams` (nothing of the project is deleted then)."""
        self._mark(project_ids)
        teams = ProjectTeam._get_collection()
        scope = {"school_id": self.school_id, "project_id": {"$in": project_ids}}
        unlinked = list(teams.find({**scope, "locked": False},
                                   {"_id": 1, "project_id": 1, "member_ids": 1}))
        teams.delete_many({**scope, "locked": False,
                           "_id": {"$in": [team["_id"] for team in unlinked]}})
        # a team that is not plainly unlocked counts as linked: the safe side
        linked = list(teams.find({**scope, "locked": {"$ne": False}},
                                 {"_id": 1, "display_name_at_time": 1, "team_version": 1,
                                  "project_id": 1, "member_ids": 1}))
        crashed = self._lock_left_by_a_crash([team["_id"] for team in linked])
        if crashed:
            teams.delete_many({**scope, "_id": {"$in": crashed}, **self._stale_lock()})
            unlinked += [team for team in linked if team["_id"] in crashed]
            linked = list(teams.find({**scope, "locked": {"$ne": False}},
                                     {"_id": 1, "display_name_at_time": 1, "team_version": 1}))
        if linked:
            self.finish(project_ids)
            raise self._has_teams(linked)
        audit.record_many([audit.audit_event(
            self.actor, self.school_id, "delete", "project_team", team["_id"],
            before={"project_id": team["project_id"], "member_ids": team.get("member_ids", [])},
            after={"reason": "project deleted"}) for team in unlinked])
        return len(unlinked)

    def _lock_left_by_a_crash(self, team_ids: list) -> list:
        """Of these locked teams, those no record links and that were locked longer ago than
        any link takes (a link locks, then writes its record a moment later): a link died in
        between. Nothing links them, so they may go. Three reads when there are any."""
        if not team_ids:
            return []
        candidates = set(ProjectTeam.objects.for_school(self.school_id).filter(
            id__in=team_ids, **{"locked_at__lt": utcnow() - CRASHED_LINK_AFTER}).scalar("id"))
        for model in LINKING_MODELS:
            if candidates:
                candidates -= set(model.objects.for_school(self.school_id).filter(
                    project_team_id__in=list(candidates)).scalar("project_team_id"))
        return sorted(candidates)

    @staticmethod
    def _stale_lock() -> dict:
        return {"locked": True, "locked_at": {"$lt": utcnow() - CRASHED_LINK_AFTER}}

    def finish(self, project_ids: list) -> None:
        ProjectTeamsClosing.objects.for_school(self.school_id).filter(
            project_id__in=project_ids).delete()

    def _mark(self, project_ids: list) -> None:
        # upserts: a marker left by a crashed delete is taken over
        ProjectTeamsClosing._get_collection().bulk_write([
            _upsert_marker(self.school_id, project_id) for project_id in project_ids])

    def _has_teams(self, teams: list[dict]) -> Conflict:
        """A locked team is linked, or is being linked right now (the lock comes first)."""
        named = [{"project_team_id": str(t["_id"]), "name": t.get("display_name_at_time"),
                  "version": t.get("team_version")} for t in teams]
        listed = ", ".join(f"'{t['name']}' v{t['version']}" for t in named)
        return Conflict(f"Records link these project teams, so the project stays: {listed}.",
                        code="project_has_teams", details={"teams": named})

    def gone_or_closing(self, project_id) -> bool:
        """Whether a team just inserted for the project must go again: the project is being
        deleted, or is gone already (its delete finished between our read and our insert)."""
        closing = ProjectTeamsClosing.objects.for_school(self.school_id).filter(
            project_id=project_id).count()
        return bool(closing) or not Project.objects.for_school(self.school_id).filter(
            id=project_id).count()


def _upsert_marker(school_id, project_id) -> UpdateOne:
    return UpdateOne({"school_id": school_id, "project_id": project_id},
                     {"$setOnInsert": {"created_at": utcnow()}}, upsert=True)
