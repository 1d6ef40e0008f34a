"""A track is one document holding its instructors and enrolments; every change of them is
one compare-and-set of it. The stored shape, writes that change nothing, a change that loses
the race to another and plans again, and reads that stay a constant number of round trips."""

from __future__ import annotations

from collections import Counter

import pytest
from bson import ObjectId

from documents.audit import AuditEvent, Notification
from documents.tracks import Track
from scripts.invariants import track_students_not_placed_once_with_an_instructor
from service.context import MODULES, Actor, SchoolContext
from service.tracks_students import TrackStudents
from tests.helpers import REQUEST_OVERHEAD
from tests.test_tracks import TrackKit


@pytest.fixture
def kit(client, world):
    return TrackKit(client, world)


def stored(track) -> dict:
    return Track._get_collection().find_one({"_id": ObjectId(track["id"])})


def loads(track) -> Counter:
    return Counter(e["instructor_id"] for e in stored(track)["enrolments"])


def admin_students(world) -> TrackStudents:
    actor = Actor(world.admin.id, "school_admin", world.company.id, world.school.id)
    ctx = SchoolContext(actor, world.school.id, world.company.id, frozenset(MODULES))
    return TrackStudents(ctx)


def reassign(kit, track, student, instructor, role="admin"):
    return kit.client.put(kit.world.url(f"/tracks/{track['id']}/students/{student}/reassign"),
                          json={"instructor_id": str(instructor)},
                          headers=kit.world.headers(role))


def test_the_track_document_holds_its_instructors_and_enrolments(kit, world, app):
    track = kit.track(instructors=[{"user_id": str(world.staff.id),
                                    "zoom_link": "https://zoom.us/j/1"}])
    kit.add_instructors(track, [world.staff2])
    pupils = kit.students(2)
    kit.enrol(track, pupils, instructor=world.staff)
    assert reassign(kit, track, pupils[0].id, world.staff2.id,
                    role="company_admin").status_code == 200

    doc = stored(track)
    assert doc["version"] == 3  # created with one instructor; one more, an enrolment, a move
    assert [(i["user_id"], i["zoom_link"], i["assigned_by"]) for i in doc["instructors"]] == [
        (world.staff.id, "https://zoom.us/j/1", world.admin.id),
        (world.staff2.id, None, world.admin.id)]
    moved, kept = doc["enrolments"]
    assert set(kept) == {"student_id", "instructor_id", "enrolled_at", "assigned_by", "pinned"}
    assert (kept["student_id"], kept["instructor_id"], kept["pinned"]) == (
        pupils[1].id, world.staff.id, True)  # an explicit instructor pins by default
    assert (kept["assigned_by"], moved["assigned_by"]) == (world.admin.id,
                                                           world.company_admin.id)
    assert moved["instructor_id"] == world.staff2.id
    assert moved["last_reassigned_at"] >= moved["enrolled_at"]
    gone = {"track_enrolments", "track_instructors", "track_ledgers", "track_moves"}
    assert gone.isdisjoint(Track._get_db().list_collection_names())


def test_reassigning_to_the_current_instructor_writes_nothing(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    pupil = kit.students(1)[0]
    kit.enrol(track, [pupil], instructor=world.staff)
    version = stored(track)["version"]

    response = reassign(kit, track, pupil.id, world.staff.id)

    assert response.status_code == 200
    assert response.json["previous_instructor_id"] == response.json["instructor_id"] == str(
        world.staff.id)
    assert stored(track)["version"] == version
    assert AuditEvent.objects(school_id=world.school.id, action="reassign").count() == 0
    assert Notification.objects(kind__in=["track_student_moved_in",
                                          "track_student_moved_out"]).count() == 0


def _interleave(monkeypatch, rival):
    """Run `rival()` once between the next change's read and its write: the race a parallel
    request makes, made deterministic."""
    collection = Track._get_collection()
    write = collection.find_one_and_update
    pending = [rival]

    def find_one_and_update(*args, **kwargs):
        while pending:
            pending.pop()()
        return write(*args, **kwargs)

    monkeypatch.setattr(collection, "find_one_and_update", find_one_and_update)


def _crowded_track(kit, world, students=12):
    teachers = kit.staff(3)
    track = kit.track(instructors=teachers)
    pupils = kit.students(students)
    kit.enrol(track, pupils, instructor=teachers[0], pinned=False)
    return track, teachers, pupils


def test_a_balance_that_loses_to_a_reassignment_plans_again_around_it(kit, world,
                                                                       monkeypatch):
    track, (busy, b, c), pupils = _crowded_track(kit, world)
    newest = pupils[-1]  # the first the balance would move
    _interleave(monkeypatch, lambda: admin_students(world).reassign(track["id"], newest.id, c.id))

    balanced = kit.post(f"/tracks/{track['id']}/balance-students")

    assert balanced.status_code == 200 and balanced.json["spread"] == 0
    placement = {e["student_id"]: e["instructor_id"] for e in stored(track)["enrolments"]}
    assert placement[newest.id] == c.id
    moved = AuditEvent.objects(school_id=world.school.id, action="balance",
                               entity_type="track_enrolment")
    assert str(newest.id) not in {e.entity_id for e in moved}
    assert len(moved) == balanced.json["students_moved"] == 7  # 11 on busy, 1 on c -> 4 each
    assert sorted(loads(track).values()) == [4, 4, 4]


def test_a_reassignment_that_loses_to_a_balance_moves_from_where_balance_put_them(
        kit, world, monkeypatch):
    track, (busy, b, c), pupils = _crowded_track(kit, world)
    newest = pupils[-1]  # balance moves the newest four to b (the smaller id), four to c
    _interleave(monkeypatch, lambda: admin_students(world).balance(track["id"]))

    response = reassign(kit, track, newest.id, c.id)  # planned as busy -> c

    balance_put = AuditEvent.objects(school_id=world.school.id, action="balance",
                                     entity_type="track_enrolment", entity_id=str(newest.id)
                                     ).get().after["instructor_id"]
    assert balance_put == str(b.id)
    assert response.status_code == 200
    assert response.json["previous_instructor_id"] == str(b.id)
    event = AuditEvent.objects(school_id=world.school.id, action="reassign").get()
    assert (event.before["instructor_id"], event.after["instructor_id"]) == (
        str(b.id), str(c.id))
    assert Notification.objects(user_id=b.id, kind="track_student_moved_out").count() == 1
    assert Notification.objects(user_id=busy.id, kind="track_student_moved_out").count() == 0
    assert stored(track)["version"] == 1 + 2  # made with 3 instructors; enrol, balance, reassign
    assert sorted(loads(track).values()) == [3, 4, 5]


@pytest.mark.parametrize("students", [6, 40])  # moved field by field, and by rewriting
def test_removing_an_instructor_rehomes_their_students_in_the_same_write(kit, world, students):
    track, (leaving, b, c), pupils = _crowded_track(kit, world, students)
    version = stored(track)["version"]

    gone = kit.client.delete(world.url(f"/tracks/{track['id']}/instructors/{leaving.id}"),
                             headers=kit.admin)

    assert gone.status_code == 204
    doc = stored(track)
    assert doc["version"] == version + 1
    assert [i["user_id"] for i in doc["instructors"]] == [b.id, c.id]
    assert sorted(loads(track).values()) == [students // 2, students - students // 2]
    assert [e["student_id"] for e in doc["enrolments"]] == [p.id for p in pupils]
    assert all(e["last_reassigned_at"] for e in doc["enrolments"])
    event = AuditEvent.objects(school_id=world.school.id, action="remove_instructor").get()
    assert event.after == {"students_moved": students}


def _students_page_round_trips(kit, world, roundtrips, students):
    track = kit.track(instructors=[world.staff, world.staff2])
    pupils = kit.students(students)
    kit.enrol(track, pupils)  # alternating, by the smaller instructor id first
    first = min(world.staff.id, world.staff2.id)
    with roundtrips() as commands:
        page = kit.get(f"/tracks/{track['id']}/students?instructor_id={first}"
                       f"&page=2&page_size=3", role="staff").json
    assert page["total"] == students // 2
    assert [s["student_id"] for s in page["items"]] == [str(p.id) for p in pupils[6:12:2]]
    assert {s["instructor_id"] for s in page["items"]} == {str(first)}
    assert all(s["name"] and s["enrolled_at"] for s in page["items"])
    return commands


def test_a_page_of_students_is_a_constant_number_of_round_trips(kit, world, roundtrips):
    small = _students_page_round_trips(kit, world, roundtrips, 12)
    large = _students_page_round_trips(kit, world, roundtrips, 200)
    assert len(small) == len(large) <= 2 + REQUEST_OVERHEAD, large


def test_the_invariant_check_names_misplaced_and_doubled_students(kit, world):
    track, (a, b, c), pupils = _crowded_track(kit, world, 3)
    def check():
        return track_students_not_placed_once_with_an_instructor(Track._get_db(),
                                                                 [world.school.id])

    assert check() == []
    stranger = ObjectId()
    where = {"school_id": world.school.id, "_id": ObjectId(track["id"])}
    Track._get_collection().update_one(where, {"$set": {"enrolments.0.instructor_id": stranger}})
    Track._get_collection().update_one(where, {"$push": {"enrolments": {
        "student_id": pupils[1].id, "instructor_id": a.id}}})
    assert check() == [
        f"track {track['id']}: student {pupils[1].id} enrolled 2 times",
        f"track {track['id']}: student {pupils[0].id} assigned to {stranger}, who does not "
        f"teach it"]



def test_a_long_list_of_students_is_checked_against_the_schools_students(kit, world,
                                                                          monkeypatch):
    monkeypatch.setattr("service.tracks_students.IN_LIMIT", 1)  # what thousands of ids take
    track = kit.track(instructors=[world.staff])
    foreign = world.add_user(world.other_school, "student")
    bad = kit.post(f"/tracks/{track['id']}/students", {"student_ids": [
        str(world.student.id), str(world.staff2.id), str(foreign.id)]})
    assert bad.status_code == 422
    assert bad.json["error"]["details"]["student_ids"] == [
        f"Not a student of this school: {world.staff2.id}",
        f"Not a student of this school: {foreign.id}"]
    pupils = kit.students(3)
    assert len(kit.enrol(track, pupils).json["enrolled"]) == 3
