"""Projects and their one level of sub-projects, shared by the tracks and team rosters
modules (either one on gives access).

Staff and admins create projects and sub-projects; staff edit and archive the ones they
created, admins every one. A project goes draft -> active -> archived, each step audited.
Archiving is final and read-only: the project, its sub-projects, their tracks and their
project teams refuse writes (409 `project_archived`). It writes four steps in this order: the
project's status, its sub-projects' status, its tracks' `archived` flag, its team versions'
`archived` flag; a crash in between is settled by archiving again (archiving an archived
project finishes the steps, idempotently). A sub-project, track, team version or linked
record created while its project is archived checks the project again after its own insert
and removes itself, so none slips in between the steps.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from mongoengine.errors import NotUniqueError

from documents.base import utcnow
from documents.projects import Project
from documents.team_rosters import ProjectTeam
from documents.tracks import Track
from service import preconditions
from service.aggregates import update_where
from service.base import SchoolService
from service.context import STAFF_ROLES
from service.errors import Conflict, Forbidden, ModuleDisabled, NotFound, ValidationFailed
from service.pagination import Page, paginate
from service.team_rosters_deletion import ProjectTeamsDeletion
from service.tracks import Tracks, project_archived

SLUG_ATTEMPTS = 20
PROJECT_MODULES = frozenset({"tracks", "team_rosters"})
# The status a project may move to from each status (archived is final).
NEXT_STATUSES = {"draft": {"active", "archived"}, "active": {"archived"}, "archived": set()}


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:80] or "project"


def next_free_slug(base: str, taken: set[str]) -> str:
    """`base`, else `base-2`, `base-3`, ...: the first one not in `taken`."""
    if base not in taken:
        return base
    suffix = 2
    while f"{base}-{suffix}" in taken:
        suffix += 1
    return f"{base}-{suffix}"


def _as_date(value):
    return value.date() if isinstance(value, datetime) else value


def check_dates(start_date, end_date) -> None:
    if start_date and end_date and _as_date(end_date) < _as_date(start_date):
        raise ValidationFailed("end_date is before start_date.",
                               {"end_date": ["Must not be before start_date."]})


class Projects(SchoolService):
    """Projects and sub-projects: staff and admins create them; staff edit and archive their
    own, admins every one; staff read them all."""

    def __init__(self, ctx):
        super().__init__(ctx)
        if not PROJECT_MODULES & ctx.modules:
            raise ModuleDisabled("tracks")

    def create(self, name: str, parent: Project | None = None, **fields) -> Project:
        self.require_role(STAFF_ROLES)
        check_dates(fields.get("start_date"), fields.get("end_date"))
        if parent is not None and "auto_balance_students" not in fields:
            fields["auto_balance_students"] = parent.auto_balance_students
        project = self._insert_with_free_slug(name, parent,
                                              {**fields, "created_by": self.actor.user_id})
        if parent is not None and self._is_archived(parent.id):
            Project.objects.for_school(self.school_id).filter(id=project.id).delete()
            raise project_archived()
        self.audit("create", "sub_project" if parent else "project", project.id,
                   after={"name": name, "slug": project.slug,
                          "parent_id": parent.id if parent else None})
        return project

    def _insert_with_free_slug(self, name, parent, fields) -> Project:
        base = slugify(name)
        for _ in range(SLUG_ATTEMPTS):
            slug = next_free_slug(base, self._slugs_like(base))
            project = Project(school_id=self.school_id, name=name, slug=slug,
                              parent_id=parent.id if parent else None, **fields)
            try:
                return project.save(force_insert=True)
            except NotUniqueError:
                continue  # another request took that slug in between: look again
        raise Conflict("Could not find a free slug for this name; try another name.",
                       code="slug_taken")

    def _slugs_like(self, base: str) -> set[str]:
        pattern = f"^{re.escape(base)}(-[0-9]+)?$"
        return set(Project.objects.for_school(self.school_id)
                   .filter(__raw__={"slug": {"$regex": pattern}}).scalar("slug"))

    def _is_archived(self, project_id) -> bool:
        return Project.objects.for_school(self.school_id).filter(
            id=project_id, status="archived").count() > 0

    def create_sub_project(self, project_id, name: str, **fields) -> Project:
        parent = self.get_project(project_id)
        if parent.parent_id is not None:
            raise ValidationFailed("A sub-project cannot have sub-projects (one level only).",
                                   {"project_id": ["Is a sub-project."]}, code="nested_sub_project")
        if parent.status == "archived":
            raise project_archived()
        return self.create(name, parent=parent, **fields)

    def get_project(self, project_id) -> Project:
        self.require_role({"company_admin", "school_admin", "staff"})
        return self.get(Project, project_id, "project")

    def list(self, status: str | None = None, page: int = 1, page_size: int = 50) -> Page:
        """Top-level projects only; sub-projects are listed under their project."""
        self.require_role({"company_admin", "school_admin", "staff"})
        projects = Project.objects.for_school(self.school_id).filter(parent_id=None)
        if status:
            projects = projects.filter(status=status)
        return paginate(projects.order_by("name", "id"), page, page_size)

    def list_sub_projects(self, project_id, page: int = 1, page_size: int = 50) -> Page:
        parent = self.get_project(project_id)
        children = Project.objects.for_school(self.school_id).filter(parent_id=parent.id)
        return paginate(children.order_by("name", "id"), page, page_size)

    def update(self, project_id, status: str | None = None, **changes) -> Project:
        """Changes fields and/or moves the status on. Staff change only what they created
        (403). An archived project refuses (409 `project_archived`), except archiving it
        again, which finishes a crashed archive."""
        project = self.get_project(project_id)
        self._require_editor(project)
        # If-Match: checked on this read for a request that changes nothing; each write
        # below states it in its own filter (service/aggregates.update_where).
        preconditions.check(project.id, project.version)
        if changes:
            self._change_fields(project, changes)
        if status is not None:
            self._move_status(project, status)
        return self.get_project(project_id)

    def _require_editor(self, project: Project) -> None:
        if self.actor.is_admin or project.created_by == self.actor.user_id:
            return
        raise Forbidden("Staff edit and archive only the projects they created.")

    def _change_fields(self, project: Project, changes: dict) -> None:
        check_dates(changes.get("start_date", project.start_date),
                    changes.get("end_date", project.end_date))
        stored = {name: Project._fields[name].to_mongo(value) if value is not None else None
                  for name, value in changes.items()}
        changed = update_where(Project._get_collection(), self.school_id,
                               {"_id": project.id, "status": {"$ne": "archived"}},
                               {"$set": {**stored, "updated_at": utcnow()}})
        if changed is None:
            raise project_archived()
        reached = self._copy_auto_balance(project, changes.get("auto_balance_students"))
        self.audit("update", _kind(project), project.id,
                   before={name: getattr(project, name) for name in changes},
                   after={**changes, **reached})

    def _copy_auto_balance(self, project: Project, auto_balance: bool | None) -> dict:
        """A project's auto-balance switch is copied to its sub-projects, whose tracks follow
        their own sub-project (a sub-project can be switched on its own afterwards). Written
        after the project: a crash in between is settled by switching again."""
        if auto_balance is None or project.parent_id is not None:
            return {}
        subs = Project.objects.for_school(self.school_id).filter(
            parent_id=project.id, status__ne="archived")
        return {"sub_projects_switched": subs.update(set__auto_balance_students=auto_balance,
                                                     set__updated_at=utcnow(),
                                                     inc__version=1)}  # their ETags move

    def _move_status(self, project: Project, status: str) -> None:
        current = project.status or "draft"
        if status == current == "archived":
            self._archive_contents(project)
            return
        if status == current:
            return
        if status not in NEXT_STATUSES[current]:
            if current == "archived":
                raise project_archived()
            raise Conflict(f"A project goes draft, active, archived: not {current} to "
                           f"{status}.", code="invalid_status",
                           details={"status": current, "requested": status})
        moved = update_where(Project._get_collection(), self.school_id,
                             {"_id": project.id, "status": project.status},
                             {"$set": {"status": status, "updated_at": utcnow()}})
        if moved is None:
            raise Conflict("The project changed while this request ran; try again.",
                           code="concurrent_update")
        counts = self._archive_contents(project) if status == "archived" else {}
        self.audit("status", _kind(project), project.id, before={"status": current},
                   after={"status": status, **counts})

    def _archive_contents(self, project: Project) -> dict:
        """Archives the sub-projects and marks the tracks, then the team versions, of the
        project (and of its sub-projects) archived: what keeps them read-only. Each step
        matches only what is not archived yet, so repeating it adds nothing."""
        subs = Project.objects.for_school(self.school_id).filter(parent_id=project.id)
        sub_ids = list(subs.scalar("id"))
        subs.filter(status__ne="archived").update(set__status="archived",
                                                  set__updated_at=utcnow(), inc__version=1)
        owners = [project.id, *sub_ids]
        tracks = Track.objects.for_school(self.school_id).filter(
            __raw__={"$or": [{"root_project_id": {"$in": owners}},
                             {"sub_project_id": {"$in": owners}}]})
        archived_tracks = tracks.update(set__archived=True)
        teams = ProjectTeam._get_collection().update_many(
            {"school_id": self.school_id, "project_id": {"$in": owners},
             "archived": {"$ne": True}},
            {"$set": {"archived": True}, "$inc": {"version": 1}})  # their ETags move
        return {"sub_projects": len(sub_ids), "tracks": archived_tracks,
                "project_teams": teams.modified_count}

    def delete(self, project_id) -> dict:
        """Removes the project, its sub-projects, and their tracks with instructors, enrolments
        and courses, and the project teams that nothing links. Refused (409
        `project_has_teams`, naming them) while a record links one of its teams: see
        service/team_rosters_deletion.py for how a team created or linked meanwhile is kept
        out. Children go first, so a crash half-way leaves the project in place to delete
        again."""
        self.require_admin()
        project = self.get_project(project_id)
        if preconditions.current() is not None:
            # If-Match: one conditional write of the project (its version in the filter, +1)
            # before any step; a writer holding the same ETag loses to it, or it loses (412).
            if update_where(Project._get_collection(), self.school_id, {"_id": project.id},
                            {"$set": {"updated_at": utcnow()}}) is None:
                raise NotFound(f"No project with id {project_id!r}.")
        project_ids = [project.id, *Project.objects.for_school(self.school_id)
                       .filter(parent_id=project.id).scalar("id")]
        teams = ProjectTeamsDeletion(self.ctx)
        teams_removed = teams.start(project_ids)
        removed = self._delete_tracks_under(project_ids)
        removed["project_teams"] = teams_removed
        removed["sub_projects"] = Project.objects.for_school(self.school_id).filter(
            parent_id=project.id).delete()
        Project.objects.for_school(self.school_id).filter(id=project.id).delete()
        teams.finish(project_ids)
        self.audit("delete", "sub_project" if project.parent_id else "project", project.id,
                   before={"name": project.name, "slug": project.slug}, after=removed)
        return removed

    def _delete_tracks_under(self, project_ids: list) -> dict:
        tracks = Track.objects.for_school(self.school_id).filter(
            __raw__={"$or": [{"root_project_id": {"$in": project_ids}},
                             {"sub_project_id": {"$in": project_ids}}]})
        return Tracks(self.ctx).delete_many(list(tracks.scalar("id")))


def _kind(project: Project) -> str:
    return "sub_project" if project.parent_id else "project"
