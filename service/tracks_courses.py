"""The courses of a track (navigation): added, listed, edited and deleted by admins.

A course is its own document (no rule ties it to the enrolments); each change is one
conditional update of it. Courses of a track whose project is archived are read-only.
"""

from __future__ import annotations

from documents.tracks import TrackCourse
from service.aggregates import update_where
from service.errors import NotFound
from service.ids import object_id
from service.pagination import Page, paginate
from service.tracks import TrackService, project_archived


class TrackCourses(TrackService):
    """Courses of one school's tracks."""

    def add(self, track_id, title: str, modules: list[dict],
            description: str | None = None, position: int | None = None) -> TrackCourse:
        self.require_admin()
        track = self._writable_track(track_id)
        if position is None:
            last = TrackCourse.objects.for_school(self.school_id).filter(
                track_id=track["_id"]).order_by("-position").only("position").first()
            position = last.position + 1 if last else 1
        course = TrackCourse(school_id=self.school_id, track_id=track["_id"], title=title,
                             description=description, position=position, modules=modules)
        course.save(force_insert=True)
        self.audit("add_course", "track", track["_id"],
                   after={"course_id": course.id, "title": title, "modules": len(modules)})
        return course

    def list(self, track_id, page: int = 1, page_size: int = 50) -> Page:
        track, _ = self._readable(track_id)
        courses = TrackCourse.objects.for_school(self.school_id).filter(track_id=track["_id"])
        return paginate(courses.order_by("position", "id"), page, page_size)

    def update(self, track_id, course_id, **changes) -> dict:
        """Changes title, description, position or modules (fields left out stay)."""
        self.require_admin()
        track = self._writable_track(track_id)
        where = {"track_id": track["_id"], "_id": object_id(course_id, "course")}
        before = TrackCourse._get_collection().find_one({"school_id": self.school_id, **where})
        if before is None:
            raise NotFound(f"No course with id {course_id!r} in this track.")
        after = update_where(TrackCourse._get_collection(), self.school_id, where,
                             {"$set": changes}) if changes else before
        if after is None:
            raise NotFound(f"No course with id {course_id!r} in this track.")
        self.audit("update_course", "track", track["_id"],
                   before={"course_id": before["_id"], **{k: before.get(k) for k in changes}},
                   after={"course_id": after["_id"], **changes})
        return course_view(after)

    def delete(self, track_id, course_id) -> None:
        self.require_admin()
        track = self._writable_track(track_id)
        gone = TrackCourse._get_collection().find_one_and_delete(
            {"school_id": self.school_id, "track_id": track["_id"],
             "_id": object_id(course_id, "course")})
        if gone is None:
            raise NotFound(f"No course with id {course_id!r} in this track.")
        self.audit("delete_course", "track", track["_id"],
                   before={"course_id": gone["_id"], "title": gone.get("title")})

    def _writable_track(self, track_id) -> dict:
        track = self._track(track_id)
        if track.get("archived"):
            raise project_archived()
        return track


def course_view(stored: dict) -> dict:
    return {"id": stored["_id"], "track_id": stored["track_id"], "title": stored["title"],
            "description": stored.get("description"), "position": stored.get("position", 0),
            "modules": [{"title": module.get("title"), "kind": module.get("kind"),
                         "url": module.get("url")} for module in stored.get("modules") or []],
            "created_at": stored.get("created_at")}
