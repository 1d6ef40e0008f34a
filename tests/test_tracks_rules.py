"""Tracks rules from the tracks design, over HTTP: weights and caps, track_full, pinning,
auto-balance reaching the tracks of sub-projects, load flags, editing and deleting tracks
and courses."""

from __future__ import annotations

import pytest

from documents.audit import AuditEvent
from documents.tracks import Track, TrackCourse
from tests.test_tracks import TrackKit


@pytest.fixture
def kit(client, world):
    return TrackKit(client, world)


def loads_by_id(kit, track) -> dict:
    return {i["instructor_id"]: i["students"] for i in kit.loads(track)["items"]}


def remove_instructor(kit, track, user, query=""):
    return kit.client.delete(kit.world.url(f"/tracks/{track['id']}/instructors/{user.id}{query}"),
                             headers=kit.admin)


# ---- weights and caps ----

def test_enrolment_and_balancing_follow_weights_under_a_cap(kit):
    heavy, light, capped = kit.staff(3)
    track = kit.track(instructors=[{"user_id": str(heavy.id), "weight": 2},
                                   {"user_id": str(light.id)},
                                   {"user_id": str(capped.id), "max_students": 2}])
    expected = {str(heavy.id): 7, str(light.id): 3, str(capped.id): 2}  # 6.67, 3.33, cap 2

    assert kit.enrol(track, kit.students(12)).status_code == 200
    assert loads_by_id(kit, track) == expected

    other = kit.track(instructors=[{"user_id": str(heavy.id), "weight": 2},
                                   {"user_id": str(light.id)},
                                   {"user_id": str(capped.id), "max_students": 2}])
    kit.enrol(other, kit.students(12), instructor=light, pinned=False)
    balanced = kit.post(f"/tracks/{other['id']}/balance-students")
    assert balanced.status_code == 200
    # The one share rounded up is light's (3.33 -> 4), who has the students: 8 moves, not 9.
    assert balanced.json["students_moved"] == 8
    assert {i["instructor_id"]: (i["students"], i["target"], i["flag"])
            for i in balanced.json["items"]} == {
        str(heavy.id): (6, 6, None), str(light.id): (4, 4, None), str(capped.id): (2, 2, None)}


def test_a_track_too_small_for_the_students_is_409_track_full_with_the_numbers(kit):
    a, b = kit.staff(2)
    track = kit.track(instructors=[{"user_id": str(a.id), "max_students": 2},
                                   {"user_id": str(b.id), "max_students": 1}])
    response = kit.enrol(track, kit.students(4))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "track_full"
    details = response.json["error"]["details"]
    assert (details["students"], details["requested"], details["capacity"]) == (0, 4, 3)
    assert kit.loads(track)["students"] == 0  # nothing enrolled
    explicit = kit.enrol(track, kit.students(2), instructor=b)
    assert explicit.status_code == 409
    assert explicit.json["error"]["code"] == "instructor_full"
    assert explicit.json["error"]["details"]["max_students"] == 1
    assert kit.enrol(track, kit.students(3)).status_code == 200
    assert kit.enrol(track, kit.students(1)).json["error"]["details"]["capacity"] == 3


def test_a_cap_is_set_changed_and_removed_with_put(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    url = world.url(f"/tracks/{track['id']}/instructors/{world.staff.id}")
    capped = kit.client.put(url, json={"max_students": 1, "weight": 3}, headers=kit.admin)
    assert (capped.json["max_students"], capped.json["weight"]) == (1, 3.0)
    kit.enrol(track, kit.students(4))
    assert loads_by_id(kit, track) == {str(world.staff.id): 1, str(world.staff2.id): 3}
    bad = kit.client.put(url, json={"weight": 0}, headers=kit.admin)
    assert bad.status_code == 422 and "weight" in bad.json["error"]["details"]
    uncapped = kit.client.put(url, json={"max_students": None}, headers=kit.admin)
    assert uncapped.json["max_students"] is None


# ---- pinning ----

def test_pinned_students_stay_through_balancing_and_removal(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    pinned = kit.students(4)
    kit.enrol(track, pinned, instructor=world.staff)  # explicit: pinned by default
    loose = kit.students(2)
    kit.enrol(track, loose, instructor=world.staff, pinned=False)

    balanced = kit.post(f"/tracks/{track['id']}/balance-students").json
    assert balanced["students_moved"] == 2  # the two unpinned ones
    assert {i["instructor_id"]: (i["students"], i["pinned"]) for i in balanced["items"]} == {
        str(world.staff.id): (4, 4), str(world.staff2.id): (2, 0)}

    refused = remove_instructor(kit, track, world.staff)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "pinned_students"
    assert refused.json["error"]["details"]["student_ids"] == [str(s.id) for s in pinned]
    assert loads_by_id(kit, track)[str(world.staff.id)] == 4

    assert remove_instructor(kit, track, world.staff, "?unpin=true").status_code == 204
    students = kit.get(f"/tracks/{track['id']}/students").json["items"]
    assert {(s["instructor_id"], s["pinned"]) for s in students} == {(str(world.staff2.id),
                                                                     False)}
    assert {s["assigned_by"] for s in students} == {str(world.admin.id)}


def test_pinned_students_go_where_the_admin_says(kit, world):
    third = kit.staff(1)[0]
    track = kit.track(instructors=[world.staff, world.staff2, third])
    pinned = kit.students(2)
    kit.enrol(track, pinned, instructor=world.staff)
    kit.enrol(track, kit.students(2), instructor=world.staff, pinned=False)
    moved = remove_instructor(kit, track, world.staff, f"?move_pinned_to={third.id}")
    assert moved.status_code == 204
    placed = {s["student_id"]: (s["instructor_id"], s["pinned"])
              for s in kit.get(f"/tracks/{track['id']}/students").json["items"]}
    assert [placed[str(s.id)] for s in pinned] == [(str(third.id), True)] * 2
    assert loads_by_id(kit, track) == {str(world.staff2.id): 2, str(third.id): 2}


def test_the_pin_route_pins_and_unpins(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    pupils = kit.students(4)
    kit.enrol(track, pupils, instructor=world.staff, pinned=False)
    url = world.url(f"/tracks/{track['id']}/students/{pupils[3].id}/pin")
    pinned = kit.client.put(url, json={"pinned": True}, headers=kit.admin)
    assert pinned.status_code == 200 and pinned.json["pinned"] is True
    kit.post(f"/tracks/{track['id']}/balance-students")
    placed = {s["student_id"]: s["instructor_id"]
              for s in kit.get(f"/tracks/{track['id']}/students").json["items"]}
    # the newest move first, but the newest is pinned: the two before it moved
    assert [placed[str(p.id)] == str(world.staff.id) for p in pupils] == [True, False, False,
                                                                         True]
    assert kit.client.put(url, json={"pinned": False}, headers=kit.admin).json["pinned"] is False
    events = AuditEvent.objects(school_id=world.school.id, entity_id=str(pupils[3].id),
                                action__in=["pin", "unpin"]).order_by("created_at")
    assert [e.action for e in events] == ["pin", "unpin"]
    staff = kit.client.put(url, json={"pinned": True}, headers=world.headers("staff"))
    assert staff.status_code == 403


def test_a_reassignment_pins_unless_told_not_to(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    a, b = kit.students(2)
    kit.enrol(track, [a, b], instructor=world.staff, pinned=False)
    for student, body, pinned in ((a, {}, True), (b, {"pinned": False}, False)):
        kit.client.put(world.url(f"/tracks/{track['id']}/students/{student.id}/reassign"),
                       json={"instructor_id": str(world.staff2.id), **body}, headers=kit.admin)
        listed = kit.get(f"/tracks/{track['id']}/students").json["items"]
        assert next(s for s in listed if s["student_id"] == str(student.id))["pinned"] is pinned


# ---- auto-balance ----

@pytest.mark.parametrize("switched_on, loads", [(True, [2, 2]), (False, [4, 0])])
def test_auto_balance_of_a_project_reaches_the_tracks_of_its_sub_projects(kit, world,
                                                                          switched_on, loads):
    project = kit.project()
    sub = kit.post(f"/projects/{project['id']}/sub-projects", {"name": "Q1"}).json
    assert sub["auto_balance_students"] is False
    track = kit.post("/tracks", {"name": "T", "sub_project_id": sub["id"],
                                 "instructors": [{"user_id": str(world.staff.id)}]}).json
    kit.enrol(track, kit.students(4))
    kit.client.patch(world.url(f"/projects/{project['id']}"),
                     json={"auto_balance_students": switched_on}, headers=kit.admin)
    assert kit.get(f"/projects/{sub['id']}").json["auto_balance_students"] is switched_on
    kit.add_instructors(track, [world.staff2])
    found = loads_by_id(kit, track)
    assert [found[str(world.staff.id)], found[str(world.staff2.id)]] == loads


def test_a_sub_project_switched_off_on_its_own_stops_balancing_its_tracks(kit, world):
    project = kit.project(auto_balance_students=True)
    sub = kit.post(f"/projects/{project['id']}/sub-projects", {"name": "Q1"}).json
    kit.client.patch(world.url(f"/projects/{sub['id']}"), json={"auto_balance_students": False},
                     headers=kit.admin)
    track = kit.post("/tracks", {"name": "T", "sub_project_id": sub["id"],
                                 "instructors": [{"user_id": str(world.staff.id)}]}).json
    kit.enrol(track, kit.students(4))
    kit.add_instructors(track, [world.staff2])
    assert loads_by_id(kit, track)[str(world.staff2.id)] == 0


@pytest.mark.parametrize("auto, loads", [(True, [1, 1]), (False, [0, 2])])
def test_an_auto_balancing_track_rebalances_when_students_leave(kit, world, auto, loads):
    track = kit.track(kit.project(auto_balance_students=auto),
                      instructors=[world.staff, world.staff2])
    pupils = kit.students(4)
    enrolled = kit.enrol(track, pupils).json["enrolled"]
    leaving = [e["student_id"] for e in enrolled if e["instructor_id"] == str(world.staff.id)]
    for student in leaving:
        gone = kit.client.delete(world.url(f"/tracks/{track['id']}/students/{student}"),
                                 headers=kit.admin)
        assert gone.status_code == 204
    found = loads_by_id(kit, track)
    assert [found[str(world.staff.id)], found[str(world.staff2.id)]] == loads
    assert kit.get(f"/tracks/{track['id']}/students").json["total"] == 2


def test_a_lowered_cap_moves_students_only_on_an_auto_balancing_track(kit, world):
    for auto, expected in ((False, (4, 0)), (True, (1, 3))):
        track = kit.track(kit.project(auto_balance_students=auto),
                          instructors=[world.staff, world.staff2])
        kit.enrol(track, kit.students(4), instructor=world.staff, pinned=False)
        capped = kit.client.put(world.url(f"/tracks/{track['id']}/instructors/{world.staff.id}"),
                                json={"max_students": 1}, headers=kit.admin)
        assert capped.status_code == 200
        found = loads_by_id(kit, track)
        assert (found[str(world.staff.id)], found[str(world.staff2.id)]) == expected
        flags = {i["instructor_id"]: i["flag"] for i in kit.loads(track)["items"]}
        assert flags[str(world.staff.id)] == ("over" if not auto else None)


# ---- loads ----

def test_loads_flag_instructors_past_20_percent_of_their_target(kit, world):
    third = kit.staff(1)[0]
    track = kit.track(instructors=[world.staff, world.staff2, {"user_id": str(third.id),
                                                               "weight": 2}])
    kit.enrol(track, kit.students(7), instructor=world.staff)  # pinned
    kit.enrol(track, kit.students(5), instructor=third, pinned=False)
    items = {i["instructor_id"]: i for i in kit.loads(track)["items"]}
    # The 7 pinned stay; the 5 others share 1:2 (1.67, 3.33), third keeps the extra one.
    assert {k: (i["students"], i["pinned"], i["target"], i["flag"])
            for k, i in items.items()} == {
        str(world.staff.id): (7, 7, 7, None), str(world.staff2.id): (0, 0, 1, "under"),
        str(third.id): (5, 0, 4, "over")}


# ---- editing and deleting ----

def test_tracks_are_renamed_and_deleted_with_force_when_they_have_students(kit, world):
    track = kit.track()
    renamed = kit.client.patch(world.url(f"/tracks/{track['id']}"),
                               json={"name": "Web Development", "description": "HTTP"},
                               headers=kit.admin)
    assert renamed.status_code == 200
    assert (renamed.json["name"], renamed.json["description"]) == ("Web Development", "HTTP")
    pupils = kit.students(2)
    kit.enrol(track, pupils)
    kit.post(f"/tracks/{track['id']}/courses", {"title": "Intro"})
    url = world.url(f"/tracks/{track['id']}")
    refused = kit.client.delete(url, headers=kit.admin)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "track_has_students"
    assert kit.client.delete(url, headers=world.headers("staff")).status_code == 403
    assert kit.client.delete(f"{url}?force=true", headers=kit.admin).status_code == 204
    assert kit.get(f"/tracks/{track['id']}").status_code == 404
    assert TrackCourse.objects(track_id=track["id"]).count() == 0
    unenrolled = AuditEvent.objects(school_id=world.school.id, action="unenrol")
    assert sorted(e.entity_id for e in unenrolled) == sorted(str(p.id) for p in pupils)
    empty = kit.track()
    assert kit.client.delete(world.url(f"/tracks/{empty['id']}"),
                             headers=kit.admin).status_code == 204


def test_courses_are_edited_and_deleted(kit, world):
    track = kit.track()
    course = kit.post(f"/tracks/{track['id']}/courses",
                      {"title": "Python", "modules": [{"title": "Intro", "kind": "content"}]}).json
    url = world.url(f"/tracks/{track['id']}/courses/{course['id']}")
    edited = kit.client.patch(url, json={"title": "Python 3", "modules": [
        {"title": "Lab", "kind": "lab"}, {"title": "Quiz", "kind": "quiz"}]}, headers=kit.admin)
    assert edited.status_code == 200
    assert edited.json["title"] == "Python 3"
    assert [m["kind"] for m in edited.json["modules"]] == ["lab", "quiz"]
    listed = kit.get(f"/tracks/{track['id']}/courses").json["items"]
    assert [(c["title"], len(c["modules"])) for c in listed] == [("Python 3", 2)]
    bad = kit.client.patch(url, json={"modules": [{"title": "X", "kind": "video"}]},
                           headers=kit.admin)
    assert bad.status_code == 422
    assert kit.client.delete(url, headers=kit.admin).status_code == 204
    assert kit.client.delete(url, headers=kit.admin).status_code == 404
    assert kit.get(f"/tracks/{track['id']}/courses").json["items"] == []
    elsewhere = kit.track()
    moved_url = world.url(f"/tracks/{elsewhere['id']}/courses/{course['id']}")
    assert kit.client.patch(moved_url, json={"title": "X"}, headers=kit.admin).status_code == 404


def test_an_archived_track_refuses_writes(kit, world):
    track = kit.track(instructors=[world.staff, world.staff2])
    Track.objects(id=track["id"]).update_one(set__archived=True)
    base = f"/tracks/{track['id']}"
    for response in (kit.enrol(track, kit.students(1)),
                     kit.post(f"{base}/balance-students"),
                     kit.post(f"{base}/courses", {"title": "X"}),
                     kit.client.patch(world.url(base), json={"name": "Y"}, headers=kit.admin),
                     remove_instructor(kit, track, world.staff),
                     kit.client.delete(world.url(f"{base}?force=true"), headers=kit.admin)):
        assert response.status_code == 409, response.json
        assert response.json["error"]["code"] == "project_archived"
    assert kit.get(base).status_code == 200
