"""Parallel cover requests against the live server (gunicorn, several workers, SecantusDB):
one (date, period) document keeps one lesson per cover teacher and per room."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from documents.timetable_cover import DaySlot
from tests.helpers import parallel

pytestmark = pytest.mark.integration
TIMEOUT = 30
MONDAY = "2026-09-14"


def post(live, path, body, headers=None):
    response = requests.post(live.url(live.world.url(path)), json=body,
                             headers=headers or live.world.headers("admin"), timeout=TIMEOUT)
    return response


def two_absent_teachers_lessons(live) -> list[dict]:
    """Two lessons in Monday's first period whose teachers are away on MONDAY."""
    world = live.world
    period = post(live, "/timetable/periods", {"period_number": 1, "period_name": "Period 1",
                                               "start_time": "08:00", "end_time": "08:45"})
    assert period.status_code == 201, period.text
    lessons = []
    for staff, class_id in ((world.staff, "10-A"), (world.staff2, "10-B")):
        lesson = post(live, "/timetable/assignments", {
            "staff_id": str(staff.id), "period_id": period.json()["id"], "day_of_week": 0,
            "classes": [{"class_id": class_id, "subject": "Maths",
                         "room_number": f"Room {class_id}"}]})
        assert lesson.status_code == 201, lesson.text
        lessons.append(lesson.json())
        absence = post(live, "/timetable/absences", {"staff_id": str(staff.id),
                                                     "start_date": MONDAY, "end_date": MONDAY,
                                                     "reason": "Ill"})
        assert absence.status_code == 201, absence.text
    return lessons


def test_twenty_parallel_covers_of_one_teacher_in_one_slot_give_one(live):
    world = live.world
    lessons = two_absent_teachers_lessons(live)
    cover = world.add_user(world.school, "staff", name="Cover")
    headers = world.headers("admin")

    responses = parallel(20, lambda i: post(live, "/timetable/cover", {
        "date": MONDAY, "assignment_id": lessons[i % 2]["id"], "action": "cover",
        "cover_staff_id": str(cover.id)}, headers))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} <= \
        {"cover_staff_taken", "already_changed", "concurrent_update"}
    (day_slot,) = DaySlot.objects(school_id=world.school.id)
    assert [c.cover_staff_id for c in day_slot.changes] == [cover.id]
    plan = requests.get(live.url(world.url(f"/timetable/cover?date={MONDAY}")),
                        headers=headers, timeout=TIMEOUT).json()
    assert sorted(lesson["status"] for lesson in plan["lessons"]) == ["covered", "uncovered"]


def test_twenty_parallel_room_moves_into_one_room_give_one(live):
    world = live.world
    lessons = two_absent_teachers_lessons(live)
    headers = world.headers("admin")

    responses = parallel(20, lambda i: post(live, "/timetable/cover", {
        "date": MONDAY, "assignment_id": lessons[i % 2]["id"], "action": "room",
        "room": "Hall"}, headers))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 19}
    (day_slot,) = DaySlot.objects(school_id=world.school.id)
    assert [c.room for c in day_slot.changes] == ["Hall"]
