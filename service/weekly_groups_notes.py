"""Staff notes on a program student: author, time, text and `is_private`. A private note is
read by its author and the school's admins; a shared note by all staff; students never read
notes (the routes admit staff roles only)."""

from __future__ import annotations

from mongoengine.queryset.visitor import Q

from documents.accounts import User
from documents.weekly_groups import ProgramStudent, StudentNote
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.errors import Forbidden, NotFound
from service.ids import object_id
from service.pagination import Page, paginate
from service.weekly_groups_weeks import WeeklyService


class StudentNotes(WeeklyService):

    def add_note(self, program_id, student_id, text: str, is_private: bool = False) -> dict:
        self.require_role(STAFF_ROLES)
        if self.actor.user_id is None:
            raise Forbidden("A note is written by a person of the school.")
        student = self._student(program_id, student_id)
        author = User.objects(id=self.actor.user_id).only("name").first()
        note = StudentNote(school_id=self.school_id, program_id=student["program_id"],
                           student_id=student["_id"], author_id=self.actor.user_id,
                           author_name=author.name if author else None, text=text,
                           is_private=is_private)
        note.save(force_insert=True)
        self.audit("create", "program_student_note", note.id,
                   after={"student_id": student["_id"], "is_private": is_private})
        return note_summary(note.to_mongo().to_dict())

    def list_notes(self, program_id, student_id, page: int = 1, page_size: int = 50) -> Page:
        """Newest first: the shared notes, the caller's private ones, and for admins all."""
        self.require_role(STAFF_ROLES)
        student = self._student(program_id, student_id)
        notes = StudentNote.objects.for_school(self.school_id).filter(student_id=student["_id"])
        if self.actor.role not in ADMIN_ROLES and self.actor.role != "system":
            notes = notes.filter(Q(is_private=False) | Q(author_id=self.actor.user_id))
        found = paginate(notes.order_by("-created_at", "-id").as_pymongo(), page, page_size)
        found.items = [note_summary(n) for n in found.items]
        return found

    def _student(self, program_id, student_id) -> dict:
        program = self.get_program(program_id)
        student = ProgramStudent.objects.for_school(self.school_id).filter(
            id=object_id(student_id, "student"), program_id=program.id).only(
            "program_id").as_pymongo().first()
        if student is None:
            raise NotFound(f"No student with id {student_id!r} in this program.")
        return student


def note_summary(note: dict) -> dict:
    return {"id": note["_id"], "student_id": note["student_id"],
            "author": {"id": note["author_id"], "name": note.get("author_name")},
            "text": note["text"], "is_private": note.get("is_private", False),
            "created_at": note["created_at"]}
