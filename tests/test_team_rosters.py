"""Team rosters: course groups, frozen project teams, locking, versions, cloning, and the
evaluations, assessments and note contexts that lock a team."""

from __future__ import annotations

import pytest

from documents.projects import Project
from documents.team_rosters import ProjectTeam
from tests.helpers import REQUEST_OVERHEAD, oid, unique


def make_project(world, name="Robotics", school=None):
    return Project(school_id=(school or world.school).id, name=name,
                   slug=unique(name.lower())).save()


@pytest.fixture
def people(world):
    return [world.add_user(world.school, "student", name=f"Pupil {i}") for i in range(4)]


@pytest.fixture
def project(world):
    return make_project(world)


def post(client, world, path, body=None, role="staff"):
    return client.post(world.url(path), json=body or {}, headers=world.headers(role))


def get(client, world, path, role="staff"):
    return client.get(world.url(path), headers=world.headers(role))


def make_group(client, world, members, name="Blue"):
    response = post(client, world, "/groups",
                    {"name": name, "member_ids": [str(u.id) for u in members]})
    assert response.status_code == 201, response.json
    return response.json


def make_team(client, world, project, **body):
    response = post(client, world, f"/projects/{project.id}/teams", body)
    assert response.status_code == 201, response.json
    return response.json


def member_ids(team):
    return {m["user_id"] for m in team["members"]}


def ids(users):
    return {str(u.id) for u in users}


def link(client, world, kind, project, team, title="Sprint review"):
    response = post(client, world, f"/{kind}",
                    {"project_id": str(project.id), "project_team_id": team["id"],
                     "title": title})
    assert response.status_code == 201, response.json
    return response.json


# Course groups

def test_groups_are_mutable_and_only_hold_users_of_the_school(client, world, people):
    group = make_group(client, world, people[:2])
    assert set(group["member_ids"]) == ids(people[:2])
    outsider = world.add_user(world.other_school, "student")
    for bad in ([str(outsider.id)], [oid()]):
        response = client.put(world.url(f"/groups/{group['id']}/members"),
                              json={"member_ids": bad}, headers=world.headers("staff"))
        assert response.status_code == 422
        assert "member_ids" in response.json["error"]["details"]
    replaced = client.put(world.url(f"/groups/{group['id']}/members"),
                          json={"member_ids": [str(people[3].id)]},
                          headers=world.headers("staff"))
    assert replaced.status_code == 200
    assert replaced.json["member_ids"] == [str(people[3].id)]
    listed = get(client, world, "/groups").json
    assert listed["total"] == 1 and listed["items"][0]["member_ids"] == [str(people[3].id)]


def test_students_cannot_manage_groups(client, world, people):
    response = post(client, world, "/groups", {"name": "X", "member_ids": []}, role="student")
    assert response.status_code == 403


# Project teams

def test_team_from_group_is_a_snapshot_that_group_changes_never_touch(client, world, people,
                                                                      project):
    group = make_group(client, world, people[:3], name="Blue")
    team = make_team(client, world, project, team_id=group["id"])
    assert team["display_name_at_time"] == "Blue"
    assert team["version"] == 1 and team["locked"] is False
    assert team["team_id"] == group["id"] and team["backfill_source"] is None
    assert member_ids(team) == ids(people[:3]) and team["member_count"] == 3
    assert {m["name"] for m in team["members"]} == {"Pupil 0", "Pupil 1", "Pupil 2"}

    client.put(world.url(f"/groups/{group['id']}/members"),
               json={"member_ids": [str(people[3].id)]}, headers=world.headers("staff"))
    post(client, world, "/groups", {"name": "Other"})
    after_change = get(client, world, f"/project-teams/{team['id']}").json
    assert member_ids(after_change) == ids(people[:3])
    assert after_change["display_name_at_time"] == "Blue"

    deleted = client.delete(world.url(f"/groups/{group['id']}"), headers=world.headers("staff"))
    assert deleted.status_code == 204
    assert get(client, world, f"/groups/{group['id']}").status_code == 404
    after_delete = get(client, world, f"/project-teams/{team['id']}").json
    assert member_ids(after_delete) == ids(people[:3])
    assert after_delete["team_id"] == group["id"]


def test_custom_team_needs_a_name_or_a_group(client, world, people, project):
    missing = post(client, world, f"/projects/{project.id}/teams", {})
    assert missing.status_code == 422
    assert set(missing.json["error"]["details"]) - {"request_id"} == {"team_id", "team_name"}
    unknown_group = post(client, world, f"/projects/{project.id}/teams", {"team_id": oid()})
    assert unknown_group.status_code == 422
    team = make_team(client, world, project, team_name="Research crew")
    assert team["display_name_at_time"] == "Research crew"
    assert team["members"] == [] and team["team_id"] is None


def test_unknown_or_foreign_project_is_404(client, world):
    foreign = make_project(world, school=world.other_school)
    for pid in (foreign.id, oid()):
        response = post(client, world, f"/projects/{pid}/teams", {"team_name": "X"})
        assert response.status_code == 404


def test_members_are_added_with_roles_and_removed(client, world, people, project):
    team = make_team(client, world, project, team_name="Crew")
    url = f"/project-teams/{team['id']}/members"
    added = post(client, world, url, {"members": [
        {"user_id": str(people[0].id), "role": "Leader"}, {"user_id": str(people[1].id)}]})
    assert added.status_code == 200
    assert {(m["user_id"], m["role"]) for m in added.json["members"]} == {
        (str(people[0].id), "Leader"), (str(people[1].id), None)}
    again = post(client, world, url, {"members": [{"user_id": str(people[0].id)}]})
    assert again.status_code == 409 and again.json["error"]["code"] == "already_member"
    stranger = post(client, world, url, {"members": [{"user_id": str(world.other_admin.id)}]})
    assert stranger.status_code == 422
    removed = client.delete(world.url(f"{url}/{people[1].id}"), headers=world.headers("staff"))
    assert removed.status_code == 204
    listed = get(client, world, url).json
    assert [m["user_id"] for m in listed["items"]] == [str(people[0].id)]
    assert listed["items"][0]["name"] == "Pupil 0" and listed["total"] == 1
    gone = client.delete(world.url(f"{url}/{people[1].id}"), headers=world.headers("staff"))
    assert gone.status_code == 404


@pytest.mark.parametrize("kind", ["evaluations", "project-assessments", "note-contexts"])
def test_linking_locks_the_team_and_a_new_version_unlocks_a_copy(client, world, people,
                                                                 project, kind):
    team = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{team['id']}/members",
         {"members": [{"user_id": str(people[0].id), "role": "Leader"}]})
    record = link(client, world, kind, project, team)
    assert record["project_team_id"] == team["id"] and record["team_version"] == 1
    assert record["member_ids"] == [str(people[0].id)] and record["status"] == "draft"

    locked = get(client, world, f"/project-teams/{team['id']}").json
    assert locked["locked"] is True and locked["locked_at"]
    add = post(client, world, f"/project-teams/{team['id']}/members",
               {"members": [{"user_id": str(people[1].id)}]})
    assert add.status_code == 409
    assert add.json["error"]["code"] == "team_locked"
    assert f"/project-teams/{team['id']}/versions" in add.json["error"]["message"]
    remove = client.delete(world.url(f"/project-teams/{team['id']}/members/{people[0].id}"),
                           headers=world.headers("staff"))
    assert remove.status_code == 409 and remove.json["error"]["code"] == "team_locked"

    version = post(client, world, f"/project-teams/{team['id']}/versions")
    assert version.status_code == 201
    v2 = version.json
    assert v2["version"] == 2 and v2["locked"] is False and v2["id"] != team["id"]
    assert v2["lineage"] == team["lineage"]
    assert [(m["user_id"], m["role"]) for m in v2["members"]] == [(str(people[0].id), "Leader")]
    grown = post(client, world, f"/project-teams/{v2['id']}/members",
                 {"members": [{"user_id": str(people[1].id)}]})
    assert grown.status_code == 200
    old = get(client, world, f"/{kind}/{record['id']}").json
    assert old["project_team_id"] == team["id"] and old["member_ids"] == [str(people[0].id)]
    assert member_ids(get(client, world, f"/project-teams/{team['id']}").json) == \
        {str(people[0].id)}


def test_versions_number_from_the_latest_of_the_lineage(client, world, project):
    team = make_team(client, world, project, team_name="Crew")
    v2 = post(client, world, f"/project-teams/{team['id']}/versions").json
    v3 = post(client, world, f"/project-teams/{team['id']}/versions").json
    assert (v2["version"], v3["version"]) == (2, 3)
    listed = get(client, world, f"/projects/{project.id}/teams").json
    assert [t["version"] for t in listed["items"]] == [1, 2, 3]
    other = make_team(client, world, project, team_name="Band")
    latest = get(client, world, f"/projects/{project.id}/teams?latest=true").json
    assert [(t["id"], t["version"]) for t in latest["items"]] == [(other["id"], 1),
                                                                  (v3["id"], 3)]
    assert latest["total"] == 2


def test_linking_a_team_of_another_project_is_422(client, world, people, project):
    other = make_project(world, name="Garden")
    team = make_team(client, world, other, team_name="Crew")
    response = post(client, world, "/evaluations",
                    {"project_id": str(project.id), "project_team_id": team["id"],
                     "title": "Review"})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "team_not_in_project"
    assert get(client, world, f"/project-teams/{team['id']}").json["locked"] is False
    unknown = post(client, world, "/evaluations",
                   {"project_id": oid(), "project_team_id": team["id"], "title": "Review"})
    assert unknown.status_code == 422 and "project_id" in unknown.json["error"]["details"]


@pytest.mark.parametrize("kind", ["evaluations", "project-assessments", "note-contexts"])
def test_close_is_idempotent_and_sets_closed_at_once(client, world, project, kind):
    team = make_team(client, world, project, team_name="Crew")
    record = link(client, world, kind, project, team)
    first = post(client, world, f"/{kind}/{record['id']}/close")
    assert first.status_code == 200
    assert first.json["status"] == "closed" and first.json["closed_at"]
    second = post(client, world, f"/{kind}/{record['id']}/close")
    assert second.status_code == 200 and second.json["closed_at"] == first.json["closed_at"]
    closes = get(client, world, f"/audit?action=close&entity_id={record['id']}",
                 role="admin").json
    assert closes["total"] == 1
    listed = get(client, world, f"/{kind}?status=closed&project_id={project.id}").json
    assert [r["id"] for r in listed["items"]] == [record["id"]]


def test_clone_copies_the_latest_version_of_each_team_once(client, world, people, project):
    target = make_project(world, name="Next term")
    group = make_group(client, world, people[:2])
    blue = make_team(client, world, project, team_id=group["id"])
    link(client, world, "evaluations", project, blue)
    v2 = post(client, world, f"/project-teams/{blue['id']}/versions").json
    post(client, world, f"/project-teams/{v2['id']}/members",
         {"members": [{"user_id": str(people[2].id)}]})
    solo = make_team(client, world, project, team_name="Solo")
    post(client, world, f"/project-teams/{solo['id']}/members",
         {"members": [{"user_id": str(people[3].id), "role": "Writer"}]})

    url = f"/projects/{target.id}/teams/clone-from/{project.id}"
    cloned = post(client, world, url)
    assert cloned.status_code == 201
    assert cloned.json["teams_cloned"] == 2 and cloned.json["members_cloned"] == 4
    teams = get(client, world, f"/projects/{target.id}/teams").json["items"]
    assert {t["id"] for t in teams} == set(cloned.json["project_team_ids"])
    by_name = {t["display_name_at_time"]: t for t in teams}
    assert member_ids(by_name["Blue"]) == ids(people[:3])
    assert by_name["Blue"]["locked"] is False and by_name["Blue"]["version"] == 1
    assert by_name["Solo"]["members"][0]["role"] == "Writer"

    again = post(client, world, url)
    assert again.json == {"teams_cloned": 0, "members_cloned": 0, "project_team_ids": []}
    assert post(client, world, f"/projects/{project.id}/teams/clone-from/{project.id}") \
        .status_code == 422


# Who may read what

def test_students_read_only_the_teams_they_are_in(client, world, people, project):
    mine = make_team(client, world, project, team_name="Mine")
    post(client, world, f"/project-teams/{mine['id']}/members",
         {"members": [{"user_id": str(world.student.id)}]})
    theirs = make_team(client, world, project, team_name="Theirs")
    listed = get(client, world, f"/projects/{project.id}/teams", role="student").json
    assert [t["id"] for t in listed["items"]] == [mine["id"]] and listed["total"] == 1
    assert get(client, world, f"/project-teams/{mine['id']}", role="student").status_code == 200
    assert get(client, world, f"/project-teams/{theirs['id']}", role="student").status_code \
        == 404
    assert get(client, world, f"/project-teams/{theirs['id']}/members",
               role="student").status_code == 404
    add = post(client, world, f"/project-teams/{mine['id']}/members",
               {"members": [{"user_id": str(people[0].id)}]}, role="student")
    assert add.status_code == 403
    staff_view = get(client, world, f"/projects/{project.id}/teams", role="admin").json
    assert staff_view["total"] == 2


def test_students_see_evaluations_of_rosters_they_were_in(client, world, project):
    mine = make_team(client, world, project, team_name="Mine")
    post(client, world, f"/project-teams/{mine['id']}/members",
         {"members": [{"user_id": str(world.student.id)}]})
    theirs = make_team(client, world, project, team_name="Theirs")
    seen = link(client, world, "evaluations", project, mine)
    hidden = link(client, world, "evaluations", project, theirs)
    listed = get(client, world, "/evaluations", role="student").json
    assert [e["id"] for e in listed["items"]] == [seen["id"]]
    assert get(client, world, f"/evaluations/{hidden['id']}", role="student").status_code == 404
    assert post(client, world, f"/evaluations/{seen['id']}/close",
                role="student").status_code == 403


def test_other_schools_see_404(client, world, project):
    team = make_team(client, world, project, team_name="Crew")
    for role in ("other_admin", "foreign_admin"):
        response = client.get(world.url(f"/project-teams/{team['id']}"),
                              headers=world.headers(role))
        assert response.status_code == 404
    # a company admin of the other school's company asking through that school: still 404
    other_url = world.url(f"/project-teams/{team['id']}", world.other_school)
    assert client.get(other_url, headers=world.headers("company_admin")).status_code == 404


def test_module_switched_off_is_403(client, world, project):
    world.set_modules(world.school, team_rosters=False)
    response = get(client, world, f"/projects/{project.id}/teams")
    assert response.status_code == 403
    assert response.json["error"]["code"] == "module_disabled"


# Audit and notifications

def test_mutations_are_audited_and_members_told_of_the_lock(client, world, project):
    team = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{team['id']}/members",
         {"members": [{"user_id": str(world.student.id)}]})
    link(client, world, "evaluations", project, team)
    post(client, world, f"/project-teams/{team['id']}/versions")
    trail = get(client, world, "/audit?entity_type=project_team", role="admin").json
    assert [e["action"] for e in trail["items"]][::-1] == [
        "create", "add_members", "lock", "create_version"]
    inbox = client.get("/api/v1/notifications", headers=world.headers("student")).json
    assert {n["kind"] for n in inbox["items"]} == {"project_team_locked",
                                                  "project_team_version"}


# Round trips

def test_listing_teams_with_members_is_a_constant_number_of_round_trips(
        client, world, roundtrips, backend):
    sizes = (3, 12) if backend == "embedded" else (3, 40)
    counts = []
    for size in sizes:
        project = make_project(world, name=f"P{size}")
        students = [world.add_user(world.school, "student") for _ in range(size)]
        teams = [ProjectTeam(school_id=world.school.id, project_id=project.id,
                             lineage=f"t{i}", display_name_at_time=f"Team {i:03d}",
                             members=[{"user_id": s.id} for s in students[i:i + 3]],
                             member_ids=[s.id for s in students[i:i + 3]])
                 for i in range(size)]
        ProjectTeam.objects.insert(teams, load_bulk=False)
        headers = world.headers("staff")
        with roundtrips() as commands:
            response = client.get(world.url(f"/projects/{project.id}/teams?page_size=500"),
                                  headers=headers)
        assert response.status_code == 200 and response.json["total"] == size
        assert all(m["name"] for t in response.json["items"] for m in t["members"])
        counts.append(len(commands))
    assert counts[0] == counts[1]
    # project, count, page of teams, member names (+1 on mongomock: its count opens a find)
    assert counts[0] <= 5 + REQUEST_OVERHEAD


def test_a_link_that_died_after_locking_leaves_a_locked_team_and_no_record(
        client, world, people, project, monkeypatch):
    """The lock is written before the record: a crash in between leaves only a locked team,
    whose roster is a valid snapshot; a new version is editable, and linking again works."""
    from documents.team_rosters import Evaluation

    team = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{team['id']}/members",
         {"members": [{"user_id": str(people[0].id)}]})

    def power_cut(*args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(Evaluation, "save", power_cut)
        died = post(client, world, "/evaluations", {"project_id": str(project.id),
                                                    "project_team_id": team["id"], "title": "R"})
    assert died.status_code == 500
    assert Evaluation.objects(school_id=world.school.id).count() == 0
    locked = get(client, world, f"/project-teams/{team['id']}").json
    assert locked["locked"] is True and member_ids(locked) == ids(people[:1])
    v2 = post(client, world, f"/project-teams/{team['id']}/versions").json
    grown = post(client, world, f"/project-teams/{v2['id']}/members",
                 {"members": [{"user_id": str(people[1].id)}]})
    assert grown.status_code == 200
    superseded = post(client, world, "/evaluations", {"project_id": str(project.id),
                                                      "project_team_id": team["id"],
                                                      "title": "R"})
    assert superseded.status_code == 409
    assert superseded.json["error"]["code"] == "superseded"
    assert superseded.json["error"]["details"]["newest_project_team_id"] == v2["id"]
    record = link(client, world, "evaluations", project, v2)
    assert record["member_ids"] == [str(people[0].id), str(people[1].id)]


def test_the_invariant_checker_names_a_record_whose_roster_differs_from_its_team(
        client, world, people, project):
    from scripts.invariants import linked_rosters_not_frozen

    team = make_team(client, world, project, team_name="Crew")
    record = link(client, world, "evaluations", project, team)
    db = ProjectTeam._get_db()
    assert linked_rosters_not_frozen(db, [world.school.id]) == []
    db.project_teams.update_one(
        {"school_id": world.school.id, "lineage": team["lineage"]},
        {"$push": {"member_ids": people[0].id}, "$inc": {"members_version": 1}})
    assert linked_rosters_not_frozen(db, [world.school.id]) == [
        f"evaluations {record['id']} recorded another roster than locked team {team['id']} "
        f"has (members version 0, the team's 1)"]


def test_editing_an_unknown_or_foreign_team_is_404(client, world, people):
    foreign = make_project(world, school=world.other_school)
    theirs = ProjectTeam(school_id=world.other_school.id, project_id=foreign.id, lineage="x",
                         display_name_at_time="Theirs").save()
    for team_id in (str(theirs.id), oid(), "not-an-id"):
        add = post(client, world, f"/project-teams/{team_id}/members",
                   {"members": [{"user_id": str(people[0].id)}]})
        assert add.status_code == 404, team_id
        remove = client.delete(world.url(f"/project-teams/{team_id}/members/{people[0].id}"),
                               headers=world.headers("staff"))
        assert remove.status_code == 404, team_id
    assert ProjectTeam.objects.get(school_id=world.other_school.id, id=theirs.id).member_ids \
        == []


def test_an_edit_that_keeps_losing_to_parallel_edits_answers_409_roster_busy(
        client, world, people, project, monkeypatch):
    """When the update matches nothing yet the team, read right after, is unlocked and allows
    the edit, a parallel edit got in between: tried again a few times, then 409."""
    import service.team_rosters

    team = make_team(client, world, project, team_name="Crew")
    attempts = []

    def always_beaten(*args, **kwargs):
        attempts.append(args[2])
        return None

    monkeypatch.setattr(service.team_rosters, "update_where", always_beaten)
    response = post(client, world, f"/project-teams/{team['id']}/members",
                    {"members": [{"user_id": str(people[0].id)}]})
    assert response.status_code == 409 and response.json["error"]["code"] == "roster_busy"
    assert len(attempts) == 8 and all(a["locked"] is False for a in attempts)
