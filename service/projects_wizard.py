"""The project wizard of the tracks design: a project, its sub-projects and their tracks in
one request, all or nothing.

Everything is checked before anything is written (a 422 names every failing part by its
place in the body, e.g. `sub_projects.1.end_date`, `tracks.0.instructors.1.user_id`). The
writes are then the project, its sub-projects one by one (each takes a free slug) and the
tracks in one bulk insert. There is no transaction: if a write fails midway (the database
goes away, a slug keeps being taken), what was already written is removed again before the
error is answered, so a failed wizard leaves nothing behind; only a crash of the process
itself in between can leave a partial project, which an admin deletes like any project.
"""

from __future__ import annotations

from documents.audit import Notification
from documents.projects import Project
from documents.tracks import Track
from service import audit, notifications
from service.context import STAFF_ROLES
from service.errors import ModuleDisabled, ValidationFailed
from service.projects import Projects, check_dates
from service.tracks import TrackService, instructor_entry

GENERATED_NAME = "{sub_project}: {role}"


class ProjectWizard(Projects):
    """Runs the wizard. Staff may create the project and its sub-projects; tracks, like every
    track, need a school admin and the tracks module."""

    def run(self, project: dict, sub_projects: list[dict], tracks: list[dict],
            generate_tracks: bool = False, instructors: list[dict] | None = None,
            dry_run: bool = False) -> dict:
        """`{project, sub_projects, tracks, dry_run}`. With `generate_tracks`, one track per
        sub-project and target role (its own, else the project's), named
        "<sub-project>: <role>" and taught by `instructors`; `tracks` adds custom ones (under
        the sub-project at index `sub_project`, else directly under the project), taught by
        their own instructors or else by `instructors`. `dry_run` checks and answers what
        would be created (no ids), writing nothing."""
        self.require_role(STAFF_ROLES)
        instructors = instructors or []
        planned = planned_tracks(project, sub_projects, tracks, generate_tracks, instructors)
        if planned:
            self.require_admin()
            if "tracks" not in self.ctx.modules:
                raise ModuleDisabled("tracks")
        self._check(project, sub_projects, planned, instructors)
        if dry_run:
            return self._preview(project, sub_projects, planned)
        return self._write(project, sub_projects, planned)

    def _check(self, project, sub_projects, planned, instructors) -> None:
        problems = date_problems("project", project)
        for n, sub in enumerate(sub_projects):
            problems.update(date_problems(f"sub_projects.{n}", sub))
        checker = TrackService(self.ctx)
        users = checker.instructor_users(
            instructors + [i for track in planned for i in track["own_instructors"]])
        problems.update(checker.instructor_problems(instructors, "instructors", users))
        for track in planned:
            problems.update(track["problems"])
            if track["own_instructors"]:
                problems.update(checker.instructor_problems(
                    track["own_instructors"], f"{track['key']}.instructors", users))
            elif not instructors:
                where = "instructors" if track["generated"] else f"{track['key']}.instructors"
                problems[where] = ["A track needs at least one instructor."]
        if problems:
            raise ValidationFailed("Some parts of the wizard are invalid; nothing was written.",
                                   problems)

    def _preview(self, project, sub_projects, planned) -> dict:
        top = self._new_project(project, None)
        subs = [self._new_project(body, top) for body in sub_projects]
        return {"project": top, "sub_projects": subs, "dry_run": True,
                "tracks": [track_view(self._new_track(track, top, subs), track)
                           for track in planned]}

    def _write(self, project, sub_projects, planned) -> dict:
        top, subs, tracks = None, [], []
        try:
            top = self._insert_with_free_slug(project["name"], None, self._fields(project, None))
            for body in sub_projects:
                subs.append(self._insert_with_free_slug(body["name"], top,
                                                        self._fields(body, top)))
            tracks = [self._new_track(track, top, subs) for track in planned]
            if tracks:
                Track.objects.insert(tracks, load_bulk=False)
        except Exception:
            if top is not None:
                self._remove(top)
            raise
        self._record(top, subs, tracks)
        return {"project": top, "sub_projects": subs, "dry_run": False,
                "tracks": [track_view(doc, track) for doc, track in zip(tracks, planned,
                                                                        strict=True)]}

    def _fields(self, body: dict, parent: Project | None) -> dict:
        fields = {k: v for k, v in body.items() if k != "name"}
        if parent is not None:
            fields.setdefault("auto_balance_students", parent.auto_balance_students)
        return {**fields, "created_by": self.actor.user_id}

    def _new_project(self, body: dict, parent: Project | None) -> Project:
        return Project(school_id=self.school_id, name=body["name"],
                       parent_id=parent.id if parent else None, **self._fields(body, parent))

    def _new_track(self, track: dict, top: Project, subs: list[Project]) -> Track:
        sub = subs[track["sub_project"]] if track["sub_project"] is not None else None
        entries = track["own_instructors"] or track["instructors"]
        doc = Track(school_id=self.school_id, name=track["name"],
                    description=track.get("description"), root_project_id=top.id,
                    version=0, enrolments=[],
                    instructors=[instructor_entry(e, self.actor.user_id, top.created_at)
                                 for e in entries])
        if sub is None:
            doc.project_id = top.id
        else:
            doc.sub_project_id = sub.id
        return doc

    def _remove(self, top: Project) -> None:
        """Undo a wizard that failed midway: its tracks, sub-projects and project."""
        Track.objects.for_school(self.school_id).filter(root_project_id=top.id).delete()
        Project.objects.for_school(self.school_id).filter(parent_id=top.id).delete()
        Project.objects.for_school(self.school_id).filter(id=top.id).delete()

    def _record(self, top: Project, subs: list[Project], tracks: list[Track]) -> None:
        events = [audit.audit_event(self.actor, self.school_id, "create", "project", top.id,
                                    after={"name": top.name, "slug": top.slug,
                                           "wizard": True})]
        events += [audit.audit_event(self.actor, self.school_id, "create", "sub_project",
                                     sub.id, after={"name": sub.name, "slug": sub.slug,
                                                    "parent_id": top.id}) for sub in subs]
        events += [audit.audit_event(self.actor, self.school_id, "create", "track", track.id,
                                     after={"name": track.name, "project_id": track.project_id,
                                            "sub_project_id": track.sub_project_id})
                   for track in tracks]
        audit.record_many(events)
        notifications.notify_many([Notification(
            user_id=instructor.user_id, school_id=self.school_id, kind="track_instructor_added",
            message=f"You now teach the track {track.name}.", data={"track_id": str(track.id)})
            for track in tracks for instructor in track.instructors])


def planned_tracks(project: dict, sub_projects: list[dict], tracks: list[dict],
                   generate: bool, instructors: list[dict]) -> list[dict]:
    """The tracks to create, custom then generated, each with where it goes, its key in the
    body (for error details) and its own problems."""
    planned = []
    for n, body in enumerate(tracks):
        index = body.get("sub_project")
        problems = ({} if index is None or index < len(sub_projects) else
                    {f"tracks.{n}.sub_project": [f"No sub-project at index {index}."]})
        planned.append({**body, "key": f"tracks.{n}", "sub_project": index,
                        "own_instructors": body.get("instructors") or [],
                        "instructors": instructors, "generated": False,
                        "problems": problems})
    if generate:
        for n, sub in enumerate(sub_projects):
            for role in sub.get("target_roles") or project.get("target_roles") or []:
                planned.append({"name": GENERATED_NAME.format(sub_project=sub["name"], role=role),
                                "description": f"{role} track of {sub['name']}.",
                                "key": f"sub_projects.{n}", "sub_project": n,
                                "own_instructors": [], "instructors": instructors,
                                "generated": True, "problems": {}})
    return planned


def date_problems(prefix: str, body: dict) -> dict:
    try:
        check_dates(body.get("start_date"), body.get("end_date"))
    except ValidationFailed:
        return {f"{prefix}.end_date": ["Must not be before start_date."]}
    return {}


def track_view(doc: Track, track: dict) -> dict:
    return {"id": doc.id, "name": doc.name, "description": doc.description,
            "project_id": doc.project_id, "sub_project_id": doc.sub_project_id,
            "root_project_id": doc.root_project_id, "archived": False,
            "sub_project_index": track["sub_project"], "generated": track["generated"],
            "instructor_ids": [i.user_id for i in doc.instructors], "created_at": doc.created_at}
