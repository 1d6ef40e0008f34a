"""Safe updates: single-resource GETs carry an `ETag`; PATCH, PUT and DELETE with `If-Match`
write only when the resource is still at that version (else 412 `precondition_failed` with the
current version, nothing written); two clients writing with the same ETag in parallel: exactly
one wins. Plus: a POST answering a secret (an API key) is never stored for replay.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from documents.accounts import School
from documents.idempotency import IdempotencyRecord
from documents.projects import Project
from documents.team_rosters import ProjectTeam
from documents.tracks import Track
from tests.helpers import oid, parallel, unique
from tests.test_timetable import assign, make_periods


class Kit:
    def __init__(self, client, world):
        self.client, self.world = client, world

    def call(self, method, path, body=None, role="admin", **headers):
        return self.client.open(self.world.url(path), method=method, json=body,
                                headers={**self.world.headers(role), **headers})

    def project(self, **body):
        response = self.call("POST", "/projects", {"name": unique("Project"), **body})
        assert response.status_code == 201, response.json
        return response.json

    def track(self):
        body = {"name": "App Development", "project_id": self.project()["id"],
                "instructors": [{"user_id": str(self.world.staff.id)}]}
        response = self.call("POST", "/tracks", body)
        assert response.status_code == 201, response.json
        return response.json


@pytest.fixture
def kit(client, world):
    return Kit(client, world)


@pytest.fixture(autouse=True)
def every_if_match_is_checked(caplog):
    """A route marked `@versioned` whose manager never held If-Match against its write logs
    an error (api/etags.py): none may in these tests."""
    yield
    assert not [r for r in caplog.records if "was not checked" in r.getMessage()]


def stale(response, current_etag):
    assert response.status_code == 412, response.json
    error = response.json["error"]
    assert error["code"] == "precondition_failed"
    assert error["details"]["current_etag"] == current_etag
    assert error["details"]["current_version"] == int(current_etag.strip('"').rpartition("-v")[2])


# ---- tracks: a Track document and its version ----

def test_a_track_get_carries_an_etag_that_an_update_moves_on(kit):
    track = kit.track()
    path = f"/tracks/{track['id']}"
    first = kit.call("GET", path)
    etag = first.headers["ETag"]
    assert etag == f'"{track["id"]}-v{Track.objects.get(id=track["id"]).version}"'
    assert kit.call("GET", path).headers["ETag"] == etag  # unchanged: the same validator

    renamed = kit.call("PATCH", path, {"name": "Web"}, **{"If-Match": etag})
    assert renamed.status_code == 200, renamed.json
    assert renamed.headers["ETag"] != etag
    assert kit.call("GET", path).headers["ETag"] == renamed.headers["ETag"]


def test_a_stale_if_match_answers_412_and_writes_nothing(kit):
    track = kit.track()
    path = f"/tracks/{track['id']}"
    old = kit.call("GET", path).headers["ETag"]
    current = kit.call("PATCH", path, {"name": "Web"}, **{"If-Match": old}).headers["ETag"]

    refused = kit.call("PATCH", path, {"name": "Lost update"}, **{"If-Match": old})
    stale(refused, current)
    assert Track.objects.get(id=track["id"]).name == "Web"
    # A PATCH that would change nothing is refused too: the client's view is out of date.
    stale(kit.call("PATCH", path, {"name": "Web"}, **{"If-Match": old}), current)

    stale(kit.call("DELETE", path, **{"If-Match": old}), current)
    assert Track.objects(id=track["id"]).count() == 1
    assert kit.call("DELETE", path, **{"If-Match": current}).status_code == 204
    assert Track.objects(id=track["id"]).count() == 0


def test_instructor_put_takes_the_tracks_etag(kit, world):
    track = kit.track()
    path = f"/tracks/{track['id']}"
    old = kit.call("GET", path).headers["ETag"]
    kit.call("PATCH", path, {"description": "moved on"})  # no If-Match: unconditional
    current = kit.call("GET", path).headers["ETag"]
    instructor = f"{path}/instructors/{world.staff.id}"
    stale(kit.call("PUT", instructor, {"weight": 2}, **{"If-Match": old}), current)
    assert kit.call("PUT", instructor, {"weight": 2}, **{"If-Match": current}).status_code == 200


def test_if_match_star_and_foreign_or_weak_tags(kit):
    track = kit.track()
    path = f"/tracks/{track['id']}"
    etag = kit.call("GET", path).headers["ETag"]
    assert kit.call("PATCH", path, {"name": "A"}, **{"If-Match": "*"}).status_code == 200
    current = kit.call("GET", path).headers["ETag"]
    # One of a list matching is enough; another resource's tag or a weak tag never matches.
    listed = kit.call("PATCH", path, {"name": "B"}, **{"If-Match": f'"x-v1", {current}'})
    assert listed.status_code == 200
    now = listed.headers["ETag"]
    other = kit.track()
    stale(kit.call("PATCH", path, {"name": "C"},
                   **{"If-Match": now.replace(track["id"], other["id"])}), now)
    stale(kit.call("PATCH", path, {"name": "C"}, **{"If-Match": f"W/{now}"}), now)
    assert etag != now
    malformed = kit.call("PATCH", path, {"name": "C"}, **{"If-Match": "v3"})
    assert malformed.status_code == 400
    assert malformed.json["error"]["code"] == "invalid_if_match"
    assert kit.call("PATCH", f"/tracks/{oid()}", {"name": "C"},
                    **{"If-Match": "*"}).status_code == 404  # `*` on nothing: unknown id


# ---- projects: update_where with the version in the filter ----

def test_project_patch_with_if_match(kit):
    project = kit.project()
    path = f"/projects/{project['id']}"
    etag = kit.call("GET", path).headers["ETag"]
    changed = kit.call("PATCH", path, {"description": "v2"}, **{"If-Match": etag})
    assert changed.status_code == 200, changed.json
    assert changed.headers["ETag"] != etag
    stale(kit.call("PATCH", path, {"description": "lost"}, **{"If-Match": etag}),
          changed.headers["ETag"])
    assert Project.objects.get(id=project["id"]).description == "v2"
    # a sub-project is a project: its own ETag, moved on by the parent's switch copied to it
    sub = kit.call("POST", f"{path}/sub-projects", {"name": "Sub"})
    assert sub.status_code == 201, sub.json
    sub_path = f"/projects/{sub.json['id']}"
    sub_etag = kit.call("GET", sub_path).headers["ETag"]
    kit.call("PATCH", path, {"auto_balance_students": True})
    stale(kit.call("PATCH", sub_path, {"name": "Lost"}, **{"If-Match": sub_etag}),
          kit.call("GET", sub_path).headers["ETag"])
    # DELETE: held against the project before any step of the cascade
    current = kit.call("GET", path).headers["ETag"]
    stale(kit.call("DELETE", path, **{"If-Match": etag}), current)
    assert Project.objects(id__in=[project["id"], sub.json["id"]]).count() == 2
    assert kit.call("DELETE", path, **{"If-Match": current}).status_code == 204
    assert Project.objects(id__in=[project["id"], sub.json["id"]]).count() == 0


# ---- project teams: the ETag is the document's write counter, not the team's number ----

def test_project_team_etag_and_delete_with_if_match(kit, world):
    project = kit.project()
    team = kit.call("POST", f"/projects/{project['id']}/teams", {"team_name": "Crew"},
                    role="staff")
    assert team.status_code == 201, team.json
    path = f"/project-teams/{team.json['id']}"
    etag = kit.call("GET", path, role="staff").headers["ETag"]
    assert etag == f'"{team.json["id"]}-v{ProjectTeam.objects.get(id=team.json["id"]).version}"'
    added = kit.call("POST", f"{path}/members", {"members": [{"user_id": str(world.student.id)}]},
                     role="staff")
    assert added.status_code == 200, added.json
    current = kit.call("GET", path, role="staff").headers["ETag"]
    assert current != etag
    stale(kit.call("DELETE", path, role="staff", **{"If-Match": etag}), current)
    assert ProjectTeam.objects(id=team.json["id"]).count() == 1
    assert kit.call("DELETE", path, role="staff", **{"If-Match": current}).status_code == 204


def test_course_group_put_members_and_delete_with_if_match(kit, world):
    made = kit.call("POST", "/groups", {"name": "Blue", "member_ids": []}, role="staff")
    assert made.status_code == 201, made.json
    path = f"/groups/{made.json['id']}"
    etag = kit.call("GET", path, role="staff").headers["ETag"]
    members = {"member_ids": [str(world.student.id)]}
    replaced = kit.call("PUT", f"{path}/members", members, role="staff", **{"If-Match": etag})
    assert replaced.status_code == 200, replaced.json
    current = replaced.headers["ETag"]
    assert current != etag
    stale(kit.call("PUT", f"{path}/members", {"member_ids": []}, role="staff",
                   **{"If-Match": etag}), current)
    stale(kit.call("DELETE", path, role="staff", **{"If-Match": etag}), current)
    assert kit.call("GET", path, role="staff").json["member_ids"] == [str(world.student.id)]
    assert kit.call("DELETE", path, role="staff", **{"If-Match": current}).status_code == 204


def test_calendar_settings_put_with_if_match(kit, world):
    etag = kit.call("GET", "/calendar/settings").headers["ETag"]
    assert etag.startswith(f'"calendar-settings:{world.school.id}-v')
    on = {"week_rotation": True, "week_a_starts": "2026-09-07"}
    changed = kit.call("PUT", "/calendar/settings", on, **{"If-Match": etag})
    assert changed.status_code == 200, changed.json
    stale(kit.call("PUT", "/calendar/settings", {"week_rotation": False}, **{"If-Match": etag}),
          changed.headers["ETag"])
    assert kit.call("GET", "/calendar/settings").json["week_rotation"] is True


# ---- schools: `version` counted by every change of name, time zone or modules ----

def test_school_patch_and_modules_put_with_if_match(client, world):
    path = f"/api/v1/schools/{world.school.id}"
    headers = world.headers("company_admin")
    etag = client.get(path, headers=headers).headers["ETag"]
    renamed = client.patch(path, json={"name": unique("Renamed")},
                           headers={**headers, "If-Match": etag})
    assert renamed.status_code == 200, renamed.json
    current = renamed.headers["ETag"]
    assert current != etag
    stale(client.patch(path, json={"name": "Lost"}, headers={**headers, "If-Match": etag}),
          current)
    stale(client.put(f"{path}/modules", json={"tracks": False},
                     headers={**headers, "If-Match": etag}), current)
    assert School.objects.get(id=world.school.id).modules.tracks is True
    switched = client.put(f"{path}/modules", json={"tracks": False},
                          headers={**headers, "If-Match": current})
    assert switched.status_code == 200, switched.json
    assert switched.headers["ETag"] != current
    assert client.get(path, headers=headers).headers["ETag"] == switched.headers["ETag"]


# ---- terms: embedded in the school calendar, each with its own version ----

def test_term_etag_is_its_own_and_guards_patch_and_delete(kit):
    def term(name, start, end):
        made = kit.call("POST", "/terms", {"name": name, "start_date": start, "end_date": end})
        assert made.status_code == 201, made.json
        return made.json

    autumn = term("Autumn", "2026-09-01", "2026-12-18")
    spring = term("Spring", "2027-01-05", "2027-03-26")
    path = f"/terms/{autumn['id']}"
    etag = kit.call("GET", path).headers["ETag"]
    # another term changing leaves this term's ETag alone
    kit.call("PATCH", f"/terms/{spring['id']}", {"name": "Spring 2027"})
    assert kit.call("GET", path).headers["ETag"] == etag
    renamed = kit.call("PATCH", path, {"name": "Autumn 2026"}, **{"If-Match": etag})
    assert renamed.status_code == 200, renamed.json
    current = renamed.headers["ETag"]
    assert current != etag
    stale(kit.call("PATCH", path, {"name": "Lost"}, **{"If-Match": etag}), current)
    stale(kit.call("DELETE", path, **{"If-Match": etag}), current)
    assert kit.call("GET", path).json["name"] == "Autumn 2026"
    assert kit.call("DELETE", path, **{"If-Match": current}).status_code == 204
    assert kit.call("GET", path).status_code == 404


# ---- absences: a confirmation moves the ETag; a stale DELETE leaves the absence ----

def test_absence_delete_with_if_match(kit, world):
    made = kit.call("POST", "/timetable/absences", {
        "staff_id": str(world.staff.id), "start_date": "2026-09-07", "end_date": "2026-09-08",
        "reason": "Ill"}, role="staff")  # self-reported: pending
    assert made.status_code == 201, made.json
    path = f"/timetable/absences/{made.json['id']}"
    etag = kit.call("GET", path).headers["ETag"]
    assert made.json["status"] == "pending"
    assert kit.call("POST", f"{path}/confirm").status_code == 200
    current = kit.call("GET", path).headers["ETag"]
    assert current != etag
    stale(kit.call("DELETE", path, **{"If-Match": etag}), current)
    assert kit.call("DELETE", path, **{"If-Match": current}).status_code == 204


# ---- read-only single resources with a version: the ETag alone ----

def test_an_exchange_requests_etag_moves_when_it_is_answered(client, world, kit):
    period = make_periods(client, world, count=2)
    mine = assign(client, world, world.staff, period[0]).json
    theirs = assign(client, world, world.staff2, period[1], day=1,
                    classes=[{"class_id": "9-B", "subject": "Physics"}]).json
    offered = kit.call("POST", "/timetable/exchange-requests", {
        "assignment_id": mine["id"], "target_assignment_id": theirs["id"], "reason": "Swap?"},
        role="staff")
    assert offered.status_code == 201, offered.json
    path = f"/timetable/exchange-requests/{offered.json['id']}"
    etag = kit.call("GET", path, role="staff").headers["ETag"]
    assert etag.startswith(f'"{offered.json["id"]}-v')
    assert kit.call("POST", f"{path}/accept", {}, role="staff2").status_code == 200
    assert kit.call("GET", path, role="staff").headers["ETag"] != etag


# ---- timetable settings: one per school, an ETag of its own kind ----

def test_timetable_settings_put_with_if_match(kit, world):
    first = kit.call("GET", "/timetable/settings")
    etag = first.headers["ETag"]
    assert etag.startswith(f'"timetable-settings:{world.school.id}-v')
    changed = kit.call("PUT", "/timetable/settings", {"allow_overlapping_assignments": True},
                       **{"If-Match": etag})
    assert changed.status_code == 200, changed.json
    current = changed.headers["ETag"]
    assert current != etag
    stale(kit.call("PUT", "/timetable/settings", {"allow_overlapping_assignments": False},
                   **{"If-Match": etag}), current)
    assert kit.call("GET", "/timetable/settings").json["allow_overlapping_assignments"] is True
    # the school's own ETag is another resource's: never a match here
    school_tag = kit.client.get(f"/api/v1/schools/{world.school.id}",
                                headers=world.headers("admin")).headers["ETag"]
    assert kit.call("PUT", "/timetable/settings", {"allow_overlapping_assignments": False},
                    **{"If-Match": school_tag}).status_code == 412


# ---- timetable assignments: the assignment's own version inside its slot ----

def test_assignment_etag_follows_its_own_version(client, world, kit):
    period = make_periods(client, world, count=2)
    lesson = assign(client, world, world.staff, period[0]).json
    other = assign(client, world, world.staff2, period[0],
                   classes=[{"class_id": "9-B", "subject": "Art"}]).json
    path = f"/timetable/assignments/{lesson['id']}"
    etag = kit.call("GET", path).headers["ETag"]
    assert etag == f'"{lesson["id"]}-v{lesson["version"]}"'
    # Another lesson of the same slot changing leaves this lesson's ETag alone.
    kit.call("PATCH", f"/timetable/assignments/{other['id']}", {"subject": "Music"})
    assert kit.call("GET", path).headers["ETag"] == etag

    edited = kit.call("PATCH", path, {"subject": "Physics"}, **{"If-Match": etag})
    assert edited.status_code == 200, edited.json
    current = edited.headers["ETag"]
    assert current == f'"{lesson["id"]}-v{edited.json["version"]}"' != etag
    stale(kit.call("PATCH", path, {"subject": "Lost"}, **{"If-Match": etag}), current)
    # a move to another slot is held against it too, and leaves the lesson where it was
    stale(kit.call("PATCH", path, {"period_id": period[1]["id"]}, **{"If-Match": etag}),
          current)
    stale(kit.call("DELETE", path, **{"If-Match": etag}), current)
    after = kit.call("GET", path).json
    assert after["period_id"] == period[0]["id"]
    assert after["classes"][0]["subject"] == "Physics"
    moved = kit.call("PATCH", path, {"period_id": period[1]["id"]}, **{"If-Match": current})
    assert moved.status_code == 200, moved.json
    assert kit.call("DELETE", path, **{"If-Match": moved.headers["ETag"]}).status_code == 204


# ---- the OpenAPI document ----

def test_openapi_declares_etag_if_match_and_412(client):
    spec = client.get("/api/v1/openapi.json").json
    track = spec["paths"]["/api/v1/schools/{school_id}/tracks/{track_id}"]
    assert "ETag" in track["get"]["responses"]["200"]["headers"]
    for method in ("patch", "delete"):
        names = [p["name"] for p in track[method]["parameters"]]
        assert "If-Match" in names
        assert "412" in track[method]["responses"]
    assert "ETag" in track["patch"]["responses"]["200"]["headers"]
    assert spec["components"]["headers"]["ETag"]
    assert spec["components"]["responses"]["PreconditionFailed"]


# ---- live: two clients, one ETag ----

@pytest.mark.integration
@pytest.mark.parametrize("kind", ["track", "project", "timetable/assignment"])
def test_two_writers_with_one_etag_exactly_one_wins(live, kind):
    world = live.world
    headers = world.headers("admin")
    base = live.url(world.url())
    kit = LiveKit(base, headers)
    made = {"track": kit.track, "project": kit.project, "timetable/assignment": kit.lesson}
    created = made[kind]()
    path = f"{base}/{kind}s/{created['id']}"
    etag = requests.get(path, headers=headers, timeout=30).headers["ETag"]
    field = {"track": "name", "project": "description", "timetable/assignment": "subject"}[kind]

    def patch(i):
        body = {field: f"Writer {i}"}
        return requests.patch(path, json=body, headers={**headers, "If-Match": etag},
                              timeout=30)

    answers = parallel(2, patch)
    assert Counter(a.status_code for a in answers) == {200: 1, 412: 1}
    winner = next(a for a in answers if a.status_code == 200)
    loser = next(a for a in answers if a.status_code == 412)
    assert loser.json()["error"]["details"]["current_etag"] == winner.headers["ETag"]
    after = requests.get(path, headers=headers, timeout=30)
    assert after.headers["ETag"] == winner.headers["ETag"]
    stored = after.json()["classes"][0] if kind == "timetable/assignment" else after.json()
    assert stored[field] == f"Writer {answers.index(winner)}"


class LiveKit:
    def __init__(self, base, headers):
        self.base, self.headers = base, headers

    def project(self):
        response = requests.post(f"{self.base}/projects", json={"name": unique("Project")},
                                 headers=self.headers, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def lesson(self):
        period = requests.post(f"{self.base}/timetable/periods", headers=self.headers, json={
            "period_number": 1, "period_name": "P1", "start_time": "08:00",
            "end_time": "08:45"}, timeout=30).json()
        response = requests.post(f"{self.base}/timetable/assignments", headers=self.headers,
                                 json={"staff_id": str(self.staff().id),
                                       "period_id": period["id"], "day_of_week": 0,
                                       "classes": [{"class_id": "10-A", "subject": "Maths"}]},
                                 timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def staff(self):
        from documents.accounts import User

        return User.objects(school_id=self.base.rsplit("/", 1)[1], role="staff").first()

    def track(self):
        body = {"name": "Track", "project_id": self.project()["id"],
                "instructors": [{"user_id": str(self.staff().id)}]}
        response = requests.post(f"{self.base}/tracks", json=body, headers=self.headers,
                                 timeout=30)
        assert response.status_code == 201, response.text
        return response.json()


# ---- the secret of a new API key is never stored for replay ----

def test_api_key_post_is_not_stored_for_replay(client, world):
    headers = world.headers("company_admin")
    base = world.url()
    account = client.post(f"{base}/service-accounts", json={"name": "sync",
                                                              "role": "read_only"},
                          headers=headers)
    assert account.status_code == 201, account.json
    keys = f"{base}/service-accounts/{account.json['id']}/keys"
    retry = {**headers, "Idempotency-Key": "make-key-1"}
    first = client.post(keys, json={}, headers=retry)
    assert first.status_code == 201, first.json
    assert IdempotencyRecord.objects.count() == 0  # neither the claim nor the body is kept
    second = client.post(keys, json={}, headers=retry)
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert second.json["key"] != first.json["key"]  # a new key, never the first one again


# ---- weekly programs: the Program document and its version ----

def test_program_patch_and_delete_with_if_match(kit):
    from documents.weekly_groups import Program

    created = kit.call("POST", "/programs", {"name": unique("Ski week"), "max_weeks": 4})
    assert created.status_code == 201, created.json
    path = f"/programs/{created.json['id']}"
    etag = kit.call("GET", path).headers["ETag"]
    renamed = kit.call("PATCH", path, {"name": "Ski fortnight"}, **{"If-Match": etag})
    assert renamed.status_code == 200, renamed.json
    assert renamed.headers["ETag"] != etag
    stale(kit.call("PATCH", path, {"name": "Lost"}, **{"If-Match": etag}),
          renamed.headers["ETag"])
    stale(kit.call("PATCH", path, {"max_weeks": 6}, **{"If-Match": etag}),
          renamed.headers["ETag"])
    stored = Program.objects.get(id=created.json["id"])
    assert (stored.name, stored.max_weeks) == ("Ski fortnight", 4)
    stale(kit.call("DELETE", path, **{"If-Match": etag}), renamed.headers["ETag"])
    assert Program.objects(id=created.json["id"]).count() == 1
    assert kit.call("DELETE", path, **{"If-Match": renamed.headers["ETag"]}).status_code == 204
    assert Program.objects(id=created.json["id"]).count() == 0
