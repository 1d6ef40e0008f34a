"""Tracks under real parallel requests: gunicorn with 4 workers on SecantusDB. Every change
of a track is one compare-and-set of the track document; these tests check the exact
outcomes and the stored track afterwards."""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from bson import ObjectId

from documents.audit import AuditEvent, Notification
from documents.tracks import Track
from tests.helpers import parallel

pytestmark = pytest.mark.integration


class LiveTracks:
    def __init__(self, live):
        self.live, self.world = live, live.world
        self.admin = self.world.headers("admin")

    def url(self, path):
        return self.live.url(self.world.url(path))

    def post(self, path, body=None):
        return requests.post(self.url(path), json=body or {}, headers=self.admin, timeout=30)

    def reassign(self, track, student, instructor):
        return requests.put(self.url(f"/tracks/{track['id']}/students/{student.id}/reassign"),
                            json={"instructor_id": str(instructor.id)}, headers=self.admin,
                            timeout=30)

    def students(self, count):
        return [self.world.add_user(self.world.school, "student") for _ in range(count)]

    def enrol(self, track, students, instructor=None):
        """Unpinned, also with an instructor: these tests race balancing against moves."""
        body = {"student_ids": [str(s.id) for s in students], "pinned": False}
        if instructor is not None:
            body["instructor_id"] = str(instructor.id)
        response = self.post(f"/tracks/{track['id']}/students", body)
        assert response.status_code == 200, response.text
        return response.json()

    def track_with(self, instructors: int, students: int):
        project = self.post("/projects", {"name": "Live"}).json()
        teachers = [self.world.add_user(self.world.school, "staff") for _ in range(instructors)]
        track = self.post("/tracks", {"name": "Live track", "project_id": project["id"],
                                      "instructors": [{"user_id": str(teacher.id)}
                                                      for teacher in teachers]}).json()
        if students:
            self.enrol(track, self.students(students))
        return track, teachers

    @staticmethod
    def stored(track) -> dict:
        return Track._get_collection().find_one({"_id": ObjectId(track["id"])})

    @classmethod
    def placement(cls, track) -> dict:
        """student id -> instructor id, as stored."""
        return {e["student_id"]: e["instructor_id"] for e in cls.stored(track)["enrolments"]}

    def loads(self, track):
        return requests.get(self.url(f"/tracks/{track['id']}/instructor-loads"),
                            headers=self.admin, timeout=30).json()

    def loads_match_the_enrolments(self, track) -> Counter:
        """The loads the API answers are the stored enrolments counted; answers them."""
        stored = Counter(str(i) for i in self.placement(track).values())
        answered = {i["instructor_id"]: i["students"] for i in self.loads(track)["items"]}
        assert {k: n for k, n in answered.items() if n} == dict(stored)
        return stored


@pytest.fixture
def tracks(live):
    return LiveTracks(live)


def test_parallel_removal_of_the_last_two_instructors_leaves_one(tracks):
    for _ in range(3):
        track, teachers = tracks.track_with(instructors=2, students=3)

        urls = [tracks.url(f"/tracks/{track['id']}/instructors/{teacher.id}")
                for teacher in teachers]
        responses = parallel(2, lambda i, urls=urls: requests.delete(
            urls[i], headers=tracks.admin, timeout=30))
        assert sorted(r.status_code for r in responses) == [204, 409]
        refused = next(r for r in responses if r.status_code == 409)
        assert refused.json()["error"]["code"] == "last_instructor"
        loads = tracks.loads(track)
        assert len(loads["items"]) == 1 and loads["items"][0]["students"] == 3
        assert set(tracks.placement(track).values()) == {ObjectId(loads["items"][0]
                                                                  ["instructor_id"])}


def test_parallel_single_enrolments_stay_balanced(tracks):
    track, teachers = tracks.track_with(instructors=3, students=0)
    pupils = tracks.students(24)

    def enrol(i):
        return tracks.post(f"/tracks/{track['id']}/students",
                           {"student_ids": [str(pupils[i].id)]})

    responses = parallel(len(pupils), enrol)
    assert [r.status_code for r in responses] == [200] * len(pupils)
    assert sorted(tracks.loads_match_the_enrolments(track).values()) == [8, 8, 8]
    assert len(tracks.stored(track)["enrolments"]) == 24


def test_parallel_enrolment_of_the_same_student_counts_once(tracks):
    track, _ = tracks.track_with(instructors=2, students=0)
    pupil = tracks.world.add_user(tracks.world.school, "student")

    def enrol(_):
        return tracks.post(f"/tracks/{track['id']}/students", {"student_ids": [str(pupil.id)]})

    responses = parallel(8, enrol)
    assert all(r.status_code == 200 for r in responses)
    assert sum(len(r.json()["enrolled"]) for r in responses) == 1
    assert sum(len(r.json()["skipped"]) for r in responses) == 7
    assert list(tracks.placement(track)) == [pupil.id]


def test_enrolments_racing_an_instructor_removal_end_with_every_student_placed(tracks):
    track, teachers = tracks.track_with(instructors=3, students=6)
    pupils = tracks.students(12)

    def act(i):
        if i == 0:
            return requests.delete(
                tracks.url(f"/tracks/{track['id']}/instructors/{teachers[0].id}"),
                headers=tracks.admin, timeout=30)
        return tracks.post(f"/tracks/{track['id']}/students",
                           {"student_ids": [str(pupils[i - 1].id)]})

    responses = parallel(13, act)
    assert responses[0].status_code == 204
    assert all(r.status_code == 200 for r in responses[1:])
    assert set(tracks.placement(track).values()) <= {t.id for t in teachers[1:]}
    assert sum(tracks.loads_match_the_enrolments(track).values()) == 18
    balanced = tracks.post(f"/tracks/{track['id']}/balance-students").json()
    assert balanced["students"] == 18 and balanced["spread"] <= 1
    assert {i["instructor_id"] for i in balanced["items"]} == {str(t.id) for t in teachers[1:]}


def test_ten_parallel_identical_reassigns_move_the_student_once(tracks):
    track, (first, second) = tracks.track_with(instructors=2, students=0)
    moving, staying, other = tracks.students(3)
    tracks.enrol(track, [moving, staying], instructor=first)
    tracks.enrol(track, [other], instructor=second)
    version = tracks.stored(track)["version"]

    responses = parallel(10, lambda _: tracks.reassign(track, moving, second))

    assert Counter(r.status_code for r in responses) == {200: 10}
    assert {r.json()["instructor_id"] for r in responses} == {str(second.id)}
    assert Counter(r.json()["previous_instructor_id"] for r in responses) == {
        str(first.id): 1, str(second.id): 9}  # one moved; nine found it done
    assert tracks.stored(track)["version"] == version + 1  # exactly one write
    moves = AuditEvent.objects(school_id=tracks.world.school.id, action="reassign",
                               entity_type="track_enrolment", entity_id=str(moving.id))
    assert [(e.before["instructor_id"], e.after["instructor_id"]) for e in moves] == [
        (str(first.id), str(second.id))]
    assert Notification.objects(user_id=first.id, kind="track_student_moved_out").count() == 1
    assert Notification.objects(user_id=second.id, kind="track_student_moved_in").count() == 1
    assert tracks.placement(track)[moving.id] == second.id
    assert tracks.loads_match_the_enrolments(track) == {str(first.id): 1, str(second.id): 2}
    newcomer = tracks.students(1)
    assert tracks.enrol(track, newcomer)["enrolled"] == [
        {"student_id": str(newcomer[0].id), "instructor_id": str(first.id), "pinned": False}]


def _replayed(track_id, start: dict, school_id) -> tuple[dict, list]:
    """Every move of the track's students in the trail (reassignments and balance), applied
    in the order of the track versions they wrote: the placement they add up to, and the
    versions seen."""
    events = AuditEvent.objects(school_id=school_id, entity_type="track_enrolment",
                                action__in=["reassign", "balance"],
                                after__track_id=str(track_id))
    placement = dict(start)
    for event in sorted(events, key=lambda e: e.after["track_version"]):
        assert placement[ObjectId(event.entity_id)] == ObjectId(event.before["instructor_id"])
        placement[ObjectId(event.entity_id)] = ObjectId(event.after["instructor_id"])
    return placement, sorted({e.after["track_version"] for e in events})


@pytest.mark.parametrize("students", [24, 60])  # balance moves by position, and rewrites
def test_balance_racing_four_reassigns_never_undoes_one(tracks, students):
    for _ in range(2):
        track, (busy, b, c) = tracks.track_with(instructors=3, students=0)
        pupils = tracks.students(students)
        tracks.enrol(track, pupils, instructor=busy)
        version = tracks.stored(track)["version"]
        movers, targets = pupils[:4], [b, c, b, c]  # the oldest: balance moves the newest

        def act(i, track=track, movers=movers, targets=targets):
            if i == 4:
                return tracks.post(f"/tracks/{track['id']}/balance-students")
            return tracks.reassign(track, movers[i], targets[i])

        responses = parallel(5, act)

        assert [r.status_code for r in responses] == [200] * 5
        assert [r.json()["previous_instructor_id"] for r in responses[:4]] == [str(busy.id)] * 4
        placement = tracks.placement(track)
        assert [placement[m.id] for m in movers] == [t.id for t in targets]
        replayed, versions = _replayed(track["id"], {p.id: busy.id for p in pupils},
                                       tracks.world.school.id)
        assert replayed == placement  # no student with an instructor nobody chose
        final = tracks.stored(track)["version"]
        assert versions == list(range(version + 1, final + 1)) and final == version + 5
        balanced = AuditEvent.objects(school_id=tracks.world.school.id, action="balance",
                                      entity_type="track", entity_id=track["id"]).get()
        assert balanced.after["students_moved"] == responses[4].json()["students_moved"] > 0
        assert responses[4].json()["spread"] <= 1 and responses[4].json()["students"] == students
        loads = tracks.loads_match_the_enrolments(track)
        if balanced.after["track_version"] == final:  # balance committed last
            assert max(loads.values()) - min(loads.values()) <= 1


def test_parallel_enrolments_never_pass_the_caps(tracks):
    project = tracks.post("/projects", {"name": "Capped"}).json()
    a, b = (tracks.world.add_user(tracks.world.school, "staff") for _ in range(2))
    track = tracks.post("/tracks", {"name": "Capped track", "project_id": project["id"],
                                    "instructors": [{"user_id": str(a.id), "max_students": 2},
                                                    {"user_id": str(b.id), "max_students": 3,
                                                     "weight": 2}]}).json()
    pupils = tracks.students(20)

    responses = parallel(20, lambda i: tracks.post(f"/tracks/{track['id']}/students",
                                                   {"student_ids": [str(pupils[i].id)]}))

    assert Counter(r.status_code for r in responses) == {200: 5, 409: 15}
    refused = [r.json()["error"] for r in responses if r.status_code == 409]
    assert {(e["code"], e["details"]["capacity"], e["details"]["students"]) for e in refused} \
        == {("track_full", 5, 5)}
    assert tracks.loads_match_the_enrolments(track) == {str(a.id): 2, str(b.id): 3}
