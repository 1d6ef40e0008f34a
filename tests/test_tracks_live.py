"""Tracks under real parallel requests: gunicorn with 4 workers on SecantusDB."""

from __future__ import annotations

import pytest
import requests

from documents.tracks import TrackEnrolment, TrackLedger
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

    def track_with(self, instructors: int, students: int):
        project = self.post("/projects", {"name": "Live"}).json()
        track = self.post("/tracks", {"name": "Live track", "project_id": project["id"]}).json()
        teachers = [self.world.add_user(self.world.school, "staff") for _ in range(instructors)]
        for teacher in teachers:
            assert self.post(f"/tracks/{track['id']}/instructors",
                             {"user_id": str(teacher.id)}).status_code == 201
        pupils = [self.world.add_user(self.world.school, "student") for _ in range(students)]
        if pupils:
            assert self.post(f"/tracks/{track['id']}/students",
                             {"student_ids": [str(p.id) for p in pupils]}).status_code == 200
        return track, teachers

    @staticmethod
    def ledger(track):
        return TrackLedger.objects(track_id=track["id"]).order_by("-seq").first()

    def loads(self, track):
        return requests.get(self.url(f"/tracks/{track['id']}/instructor-loads"),
                            headers=self.admin, timeout=30).json()


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


def test_parallel_single_enrolments_stay_balanced(tracks):
    track, teachers = tracks.track_with(instructors=3, students=0)
    pupils = [tracks.world.add_user(tracks.world.school, "student") for _ in range(24)]

    def enrol(i):
        return tracks.post(f"/tracks/{track['id']}/students",
                           {"student_ids": [str(pupils[i].id)]})

    responses = parallel(len(pupils), enrol)
    assert [r.status_code for r in responses] == [200] * len(pupils)
    loads = tracks.loads(track)
    assert sorted(i["students"] for i in loads["items"]) == [8, 8, 8]
    stored = tracks.ledger(track)
    assert stored.students_count == 24
    assert sorted(stored.loads.values()) == [8, 8, 8]


def test_parallel_enrolment_of_the_same_student_counts_once(tracks):
    track, _ = tracks.track_with(instructors=2, students=0)
    pupil = tracks.world.add_user(tracks.world.school, "student")

    def enrol(_):
        return tracks.post(f"/tracks/{track['id']}/students", {"student_ids": [str(pupil.id)]})

    responses = parallel(8, enrol)
    assert all(r.status_code == 200 for r in responses)
    assert sum(len(r.json()["enrolled"]) for r in responses) == 1
    assert TrackEnrolment.objects(track_id=track["id"]).count() == 1
    stored = tracks.ledger(track)
    assert stored.students_count == 1 and sum(stored.loads.values()) == 1


def test_enrolments_racing_an_instructor_removal_end_with_every_student_placed(tracks):
    track, teachers = tracks.track_with(instructors=3, students=6)
    pupils = [tracks.world.add_user(tracks.world.school, "student") for _ in range(12)]

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
    balanced = tracks.post(f"/tracks/{track['id']}/balance-students").json()
    assert balanced["students"] == 18 and balanced["spread"] <= 1
    assert {i["instructor_id"] for i in balanced["items"]} == {str(t.id) for t in teachers[1:]}
    placed = TrackEnrolment.objects(track_id=track["id"]).distinct("instructor_id")
    assert {str(i) for i in placed} <= {str(t.id) for t in teachers[1:]}
