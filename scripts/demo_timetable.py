"""Demo data for the timetable: a six-period day, a week of lessons with combined classes,
the Library (when the school has one) closed to alteration requests, one self-allocated slot,
one accepted swap, one request still waiting for an answer, one lesson locked by the admin
and one two-way exchange waiting for an answer."""

from __future__ import annotations

from service.context import Actor, SchoolContext
from service.timetable import TimetableSetup, real_department
from service.timetable_alterations import AlterationRequests
from service.timetable_assignments import Assignments
from service.timetable_edits import LessonEdits
from service.timetable_exchanges import ExchangeRequests

PERIODS = [(1, "Period 1", "08:00", "08:45"), (2, "Period 2", "08:50", "09:35"),
           (3, "Period 3", "09:55", "10:40"), (4, "Period 4", "10:45", "11:30"),
           (5, "Period 5", "12:15", "13:00"), (6, "Period 6", "13:05", "13:50")]
SUBJECTS = {"Mathematics": "Mathematics", "Science": "Physics", "Languages": "French",
            "Library": "Reading"}


def seed(ctx: SchoolContext, people: dict) -> None:
    setup = TimetableSetup(ctx)
    periods = [setup.create_period(number, name, start, end)
               for number, name, start, end in PERIODS]
    if real_department(ctx.school_id, "Library"):
        setup.set_department_permission("Library", allow_alterations=False,
                                        allow_inbound=False)
    staff = people.get("staff", [])
    lessons = _weekly_lessons(Assignments(ctx), staff, periods)
    if len(staff) < 3 or not lessons:
        return
    first, second, third = staff[0], staff[1], staff[2]
    _as(ctx, first).self_allocate(periods[5].id, 4, "Maths clinic",
                                  description="Drop-in help before the test")
    swap = _as_requests(ctx, first).create(lessons[first.id][0].id, "Training course",
                                           target_staff_id=second.id)
    _as_requests(ctx, second).accept(swap.id, "Happy to cover")
    _as_requests(ctx, third).create(lessons[third.id][0].id, "Parent meeting",
                                    target_department=first.department)
    LessonEdits(ctx).lock(lessons[second.id][-1].id, "Mock exam: keep the invigilator")
    ExchangeRequests(_staff_ctx(ctx, third)).create(
        lessons[third.id][1].id, lessons[second.id][1].id, "Swap our Tuesday lessons?")


def _weekly_lessons(assignments: Assignments, staff, periods) -> dict:
    """Each teacher has a form class and a room, and teaches two periods a day at rotating
    times; their first lesson of the week combines two groups of the form in the hall."""
    lessons: dict = {}
    for index, person in enumerate(staff):
        subject = SUBJECTS.get(person.department, "General studies")
        form, room = f"{7 + index % 3}-{index + 1}", f"Room {101 + index}"
        for day in range(5):
            for offset in (0, 3):
                period = periods[(index + day + offset) % len(periods)]
                classes = [{"class_id": form, "subject": subject, "room_number": room,
                            "student_count": 24}]
                if day == 0 and offset == 0:
                    classes = [{"class_id": f"{form}{group}", "subject": subject,
                                "room_number": f"Hall {index + 1}", "student_count": 12}
                               for group in ("x", "y")]
                created = assignments.create(person.id, period.id, day, classes)
                lessons.setdefault(person.id, []).append(created)
    return lessons


def _staff_ctx(ctx: SchoolContext, person) -> SchoolContext:
    actor = Actor(person.id, "staff", ctx.company_id, ctx.school_id)
    return SchoolContext(actor, ctx.school_id, ctx.company_id, ctx.modules)


def _as(ctx: SchoolContext, person) -> Assignments:
    return Assignments(_staff_ctx(ctx, person))


def _as_requests(ctx: SchoolContext, person) -> AlterationRequests:
    return AlterationRequests(_staff_ctx(ctx, person))
