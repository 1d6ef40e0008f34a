"""Tracks: placement, instructors and links, enrolment, reassignment, balance, courses, reads."""

from __future__ import annotations

import pytest

from documents.audit import Notification
from tests.helpers import REQUEST_OVERHEAD, oid


class TrackKit:
    """Builds tracks through the API as the school admin."""

    def __init__(self, client, world):
        self.client, self.world = client, world
        self.admin = world.headers("admin")
        self.taught = {"instructors": [{"user_id": str(world.staff.id)}]}

    def post(self, path, body=None, role="admin"):
        return self.client.post(self.world.url(path), json=body or {},
                                headers=self.world.headers(role))

    def get(self, path, role="admin"):
        return self.client.get(self.world.url(path), headers=self.world.headers(role))

    def project(self, **body):
        body.setdefault("name", "Enterprise Training")
        return self.post("/projects", body).json

    def track(self, project=None, instructors=None, **body):
        """A track under `project` (a new one by default) taught by `instructors` (users, or
        instructor bodies; default: world.staff)."""
        project = project or self.project()
        instructors = [i if isinstance(i, dict) else {"user_id": str(i.id)}
                       for i in (instructors or [self.world.staff])]
        response = self.post("/tracks", {"name": "App Development", "project_id": project["id"],
                                         "instructors": instructors, **body})
        assert response.status_code == 201, response.json
        return response.json

    def staff(self, count):
        return [self.world.add_user(self.world.school, "staff", name=f"Teacher {i:02d}")
                for i in range(count)]

    def students(self, count):
        return [self.world.add_user(self.world.school, "student", name=f"Pupil {i:03d}")
                for i in range(count)]

    def add_instructors(self, track, users):
        for user in users:
            response = self.post(f"/tracks/{track['id']}/instructors", {"user_id": str(user.id)})
            assert response.status_code == 201, response.json

    def enrol(self, track, students, instructor=None, pinned=None):
        body = {"student_ids": [str(s.id) for s in students]}
        if instructor is not None:
            body["instructor_id"] = str(instructor.id)
        if pinned is not None:
            body["pinned"] = pinned
        return self.post(f"/tracks/{track['id']}/students", body)

    def loads(self, track):
        return self.get(f"/tracks/{track['id']}/instructor-loads").json


@pytest.fixture
def kit(client, world):
    return TrackKit(client, world)


# ---- placement ----

def test_track_under_a_project_or_a_sub_project(kit):
    project = kit.project()
    sub = kit.post(f"/projects/{project['id']}/sub-projects", {"name": "Q1"}).json
    direct = kit.post("/tracks", {**kit.taught, "name": "A", "project_id": project["id"]})
    nested = kit.post("/tracks", {**kit.taught, "name": "B", "sub_project_id": sub["id"]})
    assert direct.status_code == nested.status_code == 201
    assert nested.json["root_project_id"] == project["id"]
    assert nested.json["project_id"] is None
    under_project = kit.get(f"/tracks?project_id={project['id']}").json
    assert [t["name"] for t in under_project["items"]] == ["A", "B"]
    under_sub = kit.get(f"/tracks?sub_project_id={sub['id']}").json
    assert [t["name"] for t in under_sub["items"]] == ["B"]


def test_track_needs_exactly_one_parent(kit):
    project = kit.project()
    sub = kit.post(f"/projects/{project['id']}/sub-projects", {"name": "Q1"}).json
    both = kit.post("/tracks", {**kit.taught, "name": "X", "project_id": project["id"],
                                "sub_project_id": sub["id"]})
    neither = kit.post("/tracks", {**kit.taught, "name": "X"})
    assert both.status_code == neither.status_code == 422
    swapped = kit.post("/tracks", {**kit.taught, "name": "X", "project_id": sub["id"]})
    assert swapped.status_code == 422 and "project_id" in swapped.json["error"]["details"]
    wrong_kind = kit.post("/tracks", {**kit.taught, "name": "X", "sub_project_id": project["id"]})
    assert wrong_kind.status_code == 422


def test_project_of_another_school_is_422(kit, client, world):
    foreign = client.post(world.url("/projects", world.other_school), json={"name": "Theirs"},
                          headers=world.headers("other_admin")).json
    response = kit.post("/tracks", {**kit.taught, "name": "X", "project_id": foreign["id"]})
    assert response.status_code == 422


def test_staff_cannot_create_tracks(kit):
    project = kit.project()
    assert kit.post("/tracks", {**kit.taught, "name": "X", "project_id": project["id"]},
                    role="staff").status_code == 403


# ---- instructors ----

def test_instructor_with_links_shows_on_the_track(kit, world):
    track = kit.track(instructors=[world.staff2])
    body = {"user_id": str(world.staff.id), "zoom_link": "https://zoom.us/j/123456",
            "teams_link": "https://teams.microsoft.com/l/meetup-join/abc",
            "slack_links": ["https://acme.slack.com/archives/C123"]}
    added = kit.post(f"/tracks/{track['id']}/instructors", body)
    assert added.status_code == 201
    assert added.json["zoom_link"] == body["zoom_link"]
    detail = kit.get(f"/tracks/{track['id']}", role="staff").json
    shown = next(i for i in detail["instructors"] if i["user_id"] == str(world.staff.id))
    assert shown["slack_links"] == body["slack_links"]
    assert shown["name"] == world.staff.name
    assert shown["assigned_by"] == str(world.admin.id)
    again = kit.post(f"/tracks/{track['id']}/instructors", {"user_id": str(world.staff.id)})
    assert again.status_code == 409
    assert again.json["error"]["code"] == "already_instructor"


def test_school_admins_may_instruct_students_may_not(kit, world):
    track = kit.track(instructors=[world.staff])
    assert kit.post(f"/tracks/{track['id']}/instructors",
                    {"user_id": str(world.admin.id)}).status_code == 201
    student = kit.post(f"/tracks/{track['id']}/instructors", {"user_id": str(world.student.id)})
    assert student.status_code == 422
    foreign = kit.post(f"/tracks/{track['id']}/instructors",
                       {"user_id": str(world.other_staff.id)})
    assert foreign.status_code == 422


@pytest.mark.parametrize("links", [
    {"zoom_link": "not a url"},
    {"teams_link": "ftp://teams.example.com/x"},
    {"slack_links": ["https://ok.slack.com/x", "javascript:alert(1)"]},
])
def test_links_must_be_http_urls(kit, world, links):
    track = kit.track(instructors=[world.staff2])
    response = kit.post(f"/tracks/{track['id']}/instructors",
                        {"user_id": str(world.staff.id), **links})
    assert response.status_code == 422
    assert set(links) <= set(response.json["error"]["details"])


def test_put_changes_links(kit, world):
    track = kit.track(instructors=[world.staff])
    response = kit.client.put(world.url(f"/tracks/{track['id']}/instructors/{world.staff.id}"),
                              json={"zoom_link": "https://zoom.us/j/999"}, headers=kit.admin)
    assert response.status_code == 200
    assert response.json["zoom_link"] == "https://zoom.us/j/999"
    bad = kit.client.put(world.url(f"/tracks/{track['id']}/instructors/{world.staff.id}"),
                         json={"zoom_link": "zoom"}, headers=kit.admin)
    assert bad.status_code == 422


def test_last_instructor_of_a_track_with_students_stays(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    kit.enrol(track, kit.students(4))
    url = f"/tracks/{track['id']}/instructors"
    first = kit.client.delete(world.url(f"{url}/{world.staff.id}"), headers=kit.admin)
    assert first.status_code == 204
    last = kit.client.delete(world.url(f"{url}/{world.staff2.id}"), headers=kit.admin)
    assert last.status_code == 409
    assert last.json["error"]["code"] == "last_instructor"
    loads = kit.loads(track)
    assert [(i["instructor_id"], i["students"]) for i in loads["items"]] == [
        (str(world.staff2.id), 4)]  # the removed instructor's students moved over


def test_the_last_instructor_of_an_empty_track_stays_too(kit, world):
    track = kit.track(instructors=[world.staff])
    response = kit.client.delete(world.url(f"/tracks/{track['id']}/instructors/{world.staff.id}"),
                                 headers=kit.admin)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "last_instructor"
    assert [i["user_id"] for i in kit.get(f"/tracks/{track['id']}").json["instructors"]] == [
        str(world.staff.id)]


def test_a_track_is_created_with_its_instructors(kit, world):
    project = kit.project()
    bare = kit.post("/tracks", {"name": "X", "project_id": project["id"]})
    empty = kit.post("/tracks", {"name": "X", "project_id": project["id"], "instructors": []})
    assert bare.status_code == empty.status_code == 422
    assert "instructors" in bare.json["error"]["details"]
    student = kit.post("/tracks", {"name": "X", "project_id": project["id"], "instructors": [
        {"user_id": str(world.staff.id)}, {"user_id": str(world.student.id)}]})
    assert student.status_code == 422
    assert set(student.json["error"]["details"]) - {"request_id"} == {"instructors.1.user_id"}
    created = kit.track(project, instructors=[
        {"user_id": str(world.staff.id), "zoom_link": "https://zoom.us/j/7", "weight": 2,
         "max_students": 30}])
    detail = kit.get(f"/tracks/{created['id']}").json
    assert [(i["user_id"], i["zoom_link"], i["weight"], i["max_students"], i["assigned_by"])
            for i in detail["instructors"]] == [
        (str(world.staff.id), "https://zoom.us/j/7", 2.0, 30, str(world.admin.id))]
    assert Notification.objects(user_id=world.staff.id, kind="track_instructor_added").count() \
        == 1


# ---- enrolment ----

def test_enrolment_goes_to_the_least_loaded_with_ties_by_id(kit):
    teachers = kit.staff(3)
    track = kit.track(instructors=teachers)
    students = kit.students(7)
    response = kit.enrol(track, students)
    assert response.status_code == 200
    by_id = sorted(str(t.id) for t in teachers)
    assert [e["instructor_id"] for e in response.json["enrolled"]] == (by_id * 3)[:7]
    assert response.json["students_count"] == 7
    loads = kit.loads(track)
    assert sorted(i["students"] for i in loads["items"]) == [2, 2, 3]
    assert loads["spread"] == 1


def test_an_explicit_instructor_wins_also_when_the_project_auto_balances(kit, world):
    for project in (kit.project(), kit.project(name="Balanced", auto_balance_students=True)):
        track = kit.track(project, instructors=[world.staff, world.staff2])
        response = kit.enrol(track, kit.students(4), instructor=world.staff)
        assert {(e["instructor_id"], e["pinned"]) for e in response.json["enrolled"]} == {
            (str(world.staff.id), True)}
        kit.add_instructors(track, [world.admin])  # auto-balancing moves only the unpinned
        loads = {i["instructor_id"]: i["students"] for i in kit.loads(track)["items"]}
        assert loads == {str(world.staff.id): 4, str(world.staff2.id): 0, str(world.admin.id): 0}


def test_explicit_instructor_must_teach_the_track(kit, world):
    track = kit.track(instructors=[world.staff])
    response = kit.enrol(track, [world.student], instructor=world.staff2)
    assert response.status_code == 422
    assert "instructor_id" in response.json["error"]["details"]


def test_only_students_of_the_school_enrol_and_the_bad_ids_are_named(kit, world):
    track = kit.track(instructors=[world.staff])
    stranger = oid()
    response = kit.post(f"/tracks/{track['id']}/students",
                        {"student_ids": [str(world.student.id), str(world.staff2.id), stranger]})
    assert response.status_code == 422
    message = " ".join(response.json["error"]["details"]["student_ids"])
    assert str(world.staff2.id) in message and stranger in message
    assert str(world.student.id) not in message
    assert kit.loads(track)["students"] == 0  # all or nothing


def test_already_enrolled_students_are_skipped(kit, world):
    track = kit.track(instructors=[world.staff])
    kit.enrol(track, [world.student])
    newcomer = kit.students(1)[0]
    response = kit.enrol(track, [world.student, newcomer])
    assert response.status_code == 200
    assert response.json["skipped"] == [str(world.student.id)]
    assert [e["student_id"] for e in response.json["enrolled"]] == [str(newcomer.id)]
    assert kit.loads(track)["students"] == 2


def test_enrolment_notifies_instructors_and_is_audited(kit, world):
    track = kit.track(instructors=[world.staff])
    kit.enrol(track, [world.student])
    assert Notification.objects(user_id=world.staff.id, kind="track_students_added").count() == 1
    trail = kit.get(f"/audit?entity_type=track_enrolment&entity_id={world.student.id}").json
    assert trail["items"][0]["action"] == "enrol"


def test_unenrol_and_list_students_by_instructor(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    students = kit.students(4)
    kit.enrol(track, students)
    listed = kit.get(f"/tracks/{track['id']}/students?instructor_id={world.staff.id}",
                     role="staff").json
    assert listed["total"] == 2
    assert {s["instructor_name"] for s in listed["items"]} == {world.staff.name}
    gone = kit.client.delete(world.url(f"/tracks/{track['id']}/students/{students[0].id}"),
                             headers=kit.admin)
    assert gone.status_code == 204
    assert kit.get(f"/tracks/{track['id']}/students").json["total"] == 3
    again = kit.client.delete(world.url(f"/tracks/{track['id']}/students/{students[0].id}"),
                              headers=kit.admin)
    assert again.status_code == 404


# ---- reassign ----

def _two_instructor_track(kit, world, students=4):
    track = kit.track(instructors=[world.staff, world.staff2])
    pupils = kit.students(students)
    enrolled = kit.enrol(track, pupils).json["enrolled"]
    return track, enrolled


def test_reassign_moves_audits_and_notifies_both(kit, world):
    track, enrolled = _two_instructor_track(kit, world, students=2)
    moving = next(e for e in enrolled if e["instructor_id"] == str(world.staff.id))
    response = kit.client.put(
        world.url(f"/tracks/{track['id']}/students/{moving['student_id']}/reassign"),
        json={"instructor_id": str(world.staff2.id)}, headers=kit.admin)
    assert response.status_code == 200
    assert response.json["instructor_id"] == str(world.staff2.id)
    assert response.json["previous_instructor_id"] == str(world.staff.id)
    assert response.json["warning"] == "imbalance"  # 2 vs mean 1: 100% above
    assert Notification.objects(user_id=world.staff.id, kind="track_student_moved_out").count() \
        == 1
    assert Notification.objects(user_id=world.staff2.id, kind="track_student_moved_in").count() \
        == 1
    event = kit.get("/audit?entity_type=track_enrolment&action=reassign").json["items"][0]
    assert event["before"]["instructor_id"] == str(world.staff.id)
    assert event["after"]["instructor_id"] == str(world.staff2.id)
    assert event["actor_id"] == str(world.admin.id)


def test_reassign_without_imbalance_has_no_warning(kit, world):
    teachers = kit.staff(3)
    track = kit.track(instructors=teachers)
    enrolled = kit.enrol(track, kit.students(30)).json["enrolled"]
    moving = next(e for e in enrolled if e["instructor_id"] == str(teachers[0].id))
    response = kit.client.put(
        world.url(f"/tracks/{track['id']}/students/{moving['student_id']}/reassign"),
        json={"instructor_id": str(teachers[1].id)}, headers=kit.admin)
    assert response.json["warning"] is None  # 11 vs mean 10: 10% above


@pytest.mark.parametrize("role", ["staff", "student"])
def test_only_admins_reassign(kit, world, role):
    track, enrolled = _two_instructor_track(kit, world)
    response = kit.client.put(
        world.url(f"/tracks/{track['id']}/students/{enrolled[0]['student_id']}/reassign"),
        json={"instructor_id": str(world.staff2.id)}, headers=world.headers(role))
    assert response.status_code == 403


def test_reassign_to_a_non_instructor_is_422_and_unknown_student_404(kit, world):
    track, enrolled = _two_instructor_track(kit, world)
    url = f"/tracks/{track['id']}/students/{enrolled[0]['student_id']}/reassign"
    response = kit.client.put(world.url(url), json={"instructor_id": str(world.admin.id)},
                              headers=kit.admin)
    assert response.status_code == 422
    response = kit.client.put(world.url(f"/tracks/{track['id']}/students/{oid()}/reassign"),
                              json={"instructor_id": str(world.staff.id)}, headers=kit.admin)
    assert response.status_code == 404


# ---- balance ----

def test_balance_reaches_spread_one_moving_the_fewest(kit, world):
    teachers = kit.staff(3)
    track = kit.track(instructors=teachers)
    kit.enrol(track, kit.students(10), instructor=teachers[0], pinned=False)
    kit.enrol(track, kit.students(1), instructor=teachers[1], pinned=False)
    before = kit.loads(track)
    assert before["spread"] == 10
    response = kit.post(f"/tracks/{track['id']}/balance-students")
    assert response.status_code == 200
    assert response.json["students_moved"] == 6  # 10 -> 4, the 11th stays with teachers[1]
    assert sorted(i["students"] for i in response.json["items"]) == [3, 4, 4]
    assert response.json["spread"] == 1
    after = kit.loads(track)
    assert after["spread"] == 1 and after["students"] == 11
    assert after["stddev"] == pytest.approx(0.4714, abs=1e-3)
    again = kit.post(f"/tracks/{track['id']}/balance-students").json
    assert again["students_moved"] == 0


def test_loads_are_read_by_staff_not_students(kit, world):
    track, _ = _two_instructor_track(kit, world)
    assert kit.get(f"/tracks/{track['id']}/instructor-loads", role="staff").status_code == 200
    assert kit.get(f"/tracks/{track['id']}/instructor-loads",
                   role="student").status_code == 403
    assert kit.post(f"/tracks/{track['id']}/balance-students", role="staff").status_code == 403


# ---- courses ----

def test_courses_keep_their_order_and_module_kinds(kit, world):
    track = kit.track()
    modules = [{"title": "Intro", "kind": "content"}, {"title": "Build it", "kind": "lab",
                                                       "url": "https://labs.example.com/1"},
               {"title": "Check", "kind": "quiz"}]
    first = kit.post(f"/tracks/{track['id']}/courses", {"title": "Python", "modules": modules})
    second = kit.post(f"/tracks/{track['id']}/courses", {"title": "Data", "modules": []})
    early = kit.post(f"/tracks/{track['id']}/courses", {"title": "Setup", "position": 0})
    assert first.status_code == second.status_code == early.status_code == 201
    listed = kit.get(f"/tracks/{track['id']}/courses", role="staff").json
    assert [c["title"] for c in listed["items"]] == ["Setup", "Python", "Data"]
    assert [m["kind"] for m in listed["items"][1]["modules"]] == ["content", "lab", "quiz"]
    bad = kit.post(f"/tracks/{track['id']}/courses",
                   {"title": "X", "modules": [{"title": "Y", "kind": "video"}]})
    assert bad.status_code == 422


# ---- what students see ----

def test_students_see_only_their_tracks(kit, world):
    track = kit.track()
    other = kit.track()
    kit.enrol(track, [world.student])
    kit.post(f"/tracks/{track['id']}/courses", {"title": "Python", "modules": []})
    mine = kit.get(f"/tracks/{track['id']}", role="student")
    assert mine.status_code == 200
    assert mine.json["my_instructor_id"] == str(world.staff.id)
    assert mine.json["instructors"][0]["zoom_link"] is None
    assert kit.get(f"/tracks/{track['id']}/courses", role="student").status_code == 200
    not_mine = kit.get(f"/tracks/{other['id']}", role="student")
    assert not_mine.status_code == 403
    assert not_mine.json["error"]["code"] == "not_enrolled"
    listed = kit.get("/tracks", role="student").json
    assert [t["id"] for t in listed["items"]] == [track["id"]]
    assert kit.get(f"/tracks/{track['id']}/students", role="student").status_code == 403


def test_foreign_track_is_404(kit, client, world):
    track = kit.track()
    response = client.get(world.url(f"/tracks/{track['id']}", world.other_school),
                          headers=world.headers("other_admin"))
    assert response.status_code == 404
    response = client.get(world.url(f"/tracks/{oid()}"), headers=world.headers("admin"))
    assert response.status_code == 404


# ---- round trips ----

def _detail_round_trips(kit, world, roundtrips, students):
    track = kit.track(instructors=kit.staff(4))
    kit.enrol(track, kit.students(students))
    for title in ("A", "B", "C"):
        kit.post(f"/tracks/{track['id']}/courses", {"title": title,
                                                     "modules": [{"title": "M", "kind": "lab"}]})
    with roundtrips() as commands:
        response = kit.client.get(kit.world.url(f"/tracks/{track['id']}"),
                                  headers=world.headers("staff"))
    assert response.json["students_count"] == students
    assert len(response.json["instructors"]) == 4 and len(response.json["courses"]) == 3
    return commands


def test_track_detail_is_a_constant_number_of_round_trips(kit, world, roundtrips):
    small = _detail_round_trips(kit, world, roundtrips, 3)
    large = _detail_round_trips(kit, world, roundtrips, 60)
    assert len(small) == len(large) <= 5 + REQUEST_OVERHEAD, large


def _enrol_and_balance_round_trips(kit, world, roundtrips, students):
    teachers = kit.staff(4)
    track = kit.track(instructors=teachers)
    pupils = kit.students(students)
    with roundtrips() as enrol_commands:
        assert kit.enrol(track, pupils, instructor=teachers[0], pinned=False).status_code == 200
    with roundtrips() as balance_commands:
        balanced = kit.post(f"/tracks/{track['id']}/balance-students").json
    assert balanced["spread"] <= 1
    return len(enrol_commands), len(balance_commands)


def test_enrol_and_balance_round_trips_do_not_grow_per_student(kit, world, roundtrips):
    enrol_small, balance_small = _enrol_and_balance_round_trips(kit, world, roundtrips, 12)
    enrol_large, balance_large = _enrol_and_balance_round_trips(kit, world, roundtrips, 240)
    assert enrol_small == enrol_large <= 10 + REQUEST_OVERHEAD
    assert balance_small == balance_large <= 19 + REQUEST_OVERHEAD
