"""Projects and their one level of sub-projects (module `tracks`)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from mongoengine.errors import NotUniqueError

from documents.base import utcnow
from documents.projects import Project
from documents.tracks import Track
from service.base import SchoolService
from service.errors import Conflict, ValidationFailed
from service.pagination import Page, paginate
from service.team_rosters_deletion import ProjectTeamsDeletion
from service.tracks import Tracks

SLUG_ATTEMPTS = 20
EDITABLE = ("name", "description", "auto_balance_students", "start_date", "end_date")


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
    """Projects and sub-projects: admins manage them, staff read them."""

    def create(self, name: str, parent: Project | None = None, **fields) -> Project:
        self.require_admin()
        check_dates(fields.get("start_date"), fields.get("end_date"))
        if parent is not None and "auto_balance_students" not in fields:
            fields["auto_balance_students"] = parent.auto_balance_students
        project = self._insert_with_free_slug(name, parent, fields)
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

    def create_sub_project(self, project_id, name: str, **fields) -> Project:
        parent = self.get_project(project_id)
        if parent.parent_id is not None:
            raise ValidationFailed("A sub-project cannot have sub-projects (one level only).",
                                   {"project_id": ["Is a sub-project."]}, code="nested_sub_project")
        return self.create(name, parent=parent, **fields)

    def get_project(self, project_id) -> Project:
        self.require_role({"company_admin", "school_admin", "staff"})
        return self.get(Project, project_id, "project")

    def list(self, page: int = 1, page_size: int = 50) -> Page:
        """Top-level projects only; sub-projects are listed under their project."""
        self.require_role({"company_admin", "school_admin", "staff"})
        projects = Project.objects.for_school(self.school_id).filter(parent_id=None)
        return paginate(projects.order_by("name", "id"), page, page_size)

    def list_sub_projects(self, project_id, page: int = 1, page_size: int = 50) -> Page:
        parent = self.get_project(project_id)
        children = Project.objects.for_school(self.school_id).filter(parent_id=parent.id)
        return paginate(children.order_by("name", "id"), page, page_size)

    def update(self, project_id, **changes) -> Project:
        self.require_admin()
        project = self.get_project(project_id)
        before = {name: getattr(project, name) for name in changes if name in EDITABLE}
        merged = {**before, **changes}
        check_dates(merged.get("start_date", project.start_date),
                    merged.get("end_date", project.end_date))
        for name, value in changes.items():
            setattr(project, name, value)
        project.updated_at = utcnow()
        project.save()
        self.audit("update", "sub_project" if project.parent_id else "project", project.id,
                   before=before, after=changes)
        return project

    def delete(self, project_id) -> dict:
        """Removes the project, its sub-projects, and their tracks with instructors, enrolments
        and courses, and the project teams that nothing links. Refused (409
        `project_has_teams`, naming them) while a record links one of its teams: see
        service/team_rosters_deletion.py for how a team created or linked meanwhile is kept
        out. Children go first, so a crash half-way leaves the project in place to delete
        again."""
        self.require_admin()
        project = self.get_project(project_id)
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
