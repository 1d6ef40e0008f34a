"""Team rosters v1.1: deleting teams and projects with teams, versions of one team (re-create,
superseded, diff, correction of backfilled teams, late joiners) and a student's teams."""

from __future__ import annotations

import pytest

from documents.audit import AuditEvent
from documents.projects import Project
from documents.team_rosters import Evaluation, ProjectTeam, ProjectTeamsClosing
from service.context import SYSTEM
from service.team_rosters_backfill import TeamBackfill
from service.tenancy import school_context
from tests.helpers import REQUEST_OVERHEAD
from tests.test_team_rosters import (
    get,
    ids,
    link,
    make_group,
    make_project,
    make_team,
    member_ids,
    post,
)


@pytest.fixture
def people(world):
    return [world.add_user(world.school, "student", name=f"Pupil {i}") for i in range(6)]


@pytest.fixture
def project(world):
    return make_project(world)


def delete(client, world, path, role="staff"):
    return client.delete(world.url(path), headers=world.headers(role))


def error(response):
    return response.json["error"]


# Deleting teams and projects

def test_a_team_nothing_links_can_be_deleted_a_linked_one_cannot(client, world, people,
                                                                 project):
    loose = make_team(client, world, project, team_name="Loose")
    linked = make_team(client, world, project, team_name="Linked")
    link(client, world, "evaluations", project, linked)

    assert delete(client, world, f"/project-teams/{loose['id']}").status_code == 204
    assert get(client, world, f"/project-teams/{loose['id']}").status_code == 404
    refused = delete(client, world, f"/project-teams/{linked['id']}")
    assert refused.status_code == 409 and error(refused)["code"] == "team_linked"
    assert get(client, world, f"/project-teams/{linked['id']}").status_code == 200
    assert delete(client, world, f"/project-teams/{loose['id']}").status_code == 404
    assert delete(client, world, f"/project-teams/{linked['id']}",
                  role="student").status_code == 403
    assert AuditEvent.objects(action="delete", entity_type="project_team",
                              entity_id=str(loose["id"])).count() == 1


def test_a_team_locked_by_a_link_that_died_goes_once_the_lock_is_old(client, world, project):
    """A link that died after locking leaves a locked team no record links: refused while a
    link could still be writing its record, deleted (alone or with its project) after."""
    from datetime import timedelta

    from documents.base import utcnow
    from service.team_rosters_deletion import CRASHED_LINK_AFTER

    orphan = make_team(client, world, project, team_name="Orphan")
    linked = make_team(client, world, project, team_name="Linked")
    record = link(client, world, "evaluations", project, linked)
    ProjectTeam.objects(id=orphan["id"]).update_one(set__locked=True, set__locked_at=utcnow())
    fresh = delete(client, world, f"/project-teams/{orphan['id']}")
    assert fresh.status_code == 409 and error(fresh)["code"] == "team_linked"

    long_ago = utcnow() - CRASHED_LINK_AFTER - timedelta(seconds=1)
    ProjectTeam.objects(id__in=[orphan["id"], linked["id"]]).update(set__locked_at=long_ago)
    assert delete(client, world, f"/project-teams/{linked['id']}").status_code == 409
    assert delete(client, world, f"/project-teams/{orphan['id']}").status_code == 204

    again = make_team(client, world, project, team_name="Orphan 2")
    ProjectTeam.objects(id=again["id"]).update_one(set__locked=True, set__locked_at=long_ago)
    Evaluation.objects(id=record["id"]).delete()  # nothing links `linked` any more
    assert delete(client, world, f"/projects/{project.id}", role="admin").status_code == 204
    assert ProjectTeam.objects(project_id=project.id).count() == 0


def test_a_project_whose_teams_nothing_links_is_deleted_with_them(client, world, people,
                                                                  project):
    group = make_group(client, world, people[:2])
    teams = [make_team(client, world, project, team_id=group["id"]),
             make_team(client, world, project, team_name="Crew")]
    response = delete(client, world, f"/projects/{project.id}", role="admin")
    assert response.status_code == 204, response.json
    assert Project.objects(id=project.id).count() == 0
    assert ProjectTeam.objects(id__in=[t["id"] for t in teams]).count() == 0
    assert ProjectTeamsClosing.objects(school_id=world.school.id).count() == 0
    assert get(client, world, f"/groups/{group['id']}").status_code == 200


def test_linked_teams_block_the_project_delete_and_are_named(client, world, people, project):
    loose = make_team(client, world, project, team_name="Loose")
    linked = make_team(client, world, project, team_name="Linked")
    link(client, world, "note-contexts", project, linked)
    response = delete(client, world, f"/projects/{project.id}", role="admin")
    assert response.status_code == 409
    assert error(response)["code"] == "project_has_teams"
    assert [t["project_team_id"] for t in error(response)["details"]["teams"]] == [linked["id"]]
    assert "Linked" in error(response)["message"]
    assert Project.objects(id=project.id).count() == 1
    assert get(client, world, f"/project-teams/{linked['id']}").status_code == 200
    # the unlinked team went; the project takes teams again
    assert get(client, world, f"/project-teams/{loose['id']}").status_code == 404
    assert ProjectTeamsClosing.objects(school_id=world.school.id).count() == 0
    make_team(client, world, project, team_name="Again")


def test_a_team_created_while_its_project_is_being_deleted_takes_itself_back(
        client, world, project):
    """A crash after the delete marked the project leaves the marker: creating a team then
    answers 409 project_deleting and leaves nothing; deleting the project again completes."""
    ProjectTeamsClosing(school_id=world.school.id, project_id=project.id).save()
    response = post(client, world, f"/projects/{project.id}/teams", {"team_name": "Late"})
    assert response.status_code == 409 and error(response)["code"] == "project_deleting"
    assert ProjectTeam.objects(project_id=project.id).count() == 0
    assert delete(client, world, f"/projects/{project.id}", role="admin").status_code == 204
    assert ProjectTeamsClosing.objects(school_id=world.school.id).count() == 0


# Versions

def test_creating_a_team_again_from_the_same_group_makes_the_next_version(client, world,
                                                                          people, project):
    group = make_group(client, world, people[:2], name="Blue")
    first = make_team(client, world, project, team_id=group["id"])
    client.put(world.url(f"/groups/{group['id']}/members"),
               json={"member_ids": [str(u.id) for u in people[:3]]},
               headers=world.headers("staff"))
    second = make_team(client, world, project, team_id=group["id"])
    assert (first["version"], second["version"]) == (1, 2)
    assert second["lineage"] == first["lineage"]
    assert member_ids(second) == ids(people[:3])
    other_project = make_project(world, "Other")
    assert make_team(client, world, other_project, team_id=group["id"])["version"] == 1
    assert get(client, world, f"/project-teams/{first['id']}").json["superseded"] is True


def test_a_superseded_version_cannot_be_linked_records_keep_theirs(client, world, people,
                                                                    project):
    v1 = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{v1['id']}/members",
         {"members": [{"user_id": str(people[0].id)}]})
    kept = link(client, world, "evaluations", project, v1)
    v2 = post(client, world, f"/project-teams/{v1['id']}/versions").json
    for kind in ("evaluations", "project-assessments", "note-contexts"):
        refused = post(client, world, f"/{kind}", {"project_id": str(project.id),
                                                   "project_team_id": v1["id"], "title": "X"})
        assert refused.status_code == 409, kind
        assert error(refused)["code"] == "superseded"
        assert error(refused)["details"]["newest_project_team_id"] == v2["id"]
        assert error(refused)["details"]["newest_version"] == 2
    assert get(client, world, f"/evaluations/{kept['id']}").json["project_team_id"] == v1["id"]
    assert link(client, world, "evaluations", project, v2)["team_version"] == 2


def test_diff_names_who_was_added_and_removed_between_versions(client, world, people,
                                                               project):
    v1 = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{v1['id']}/members",
         {"members": [{"user_id": str(people[0].id), "role": "Lead"},
                      {"user_id": str(people[1].id)}]})
    v2 = post(client, world, f"/project-teams/{v1['id']}/versions").json
    client.delete(world.url(f"/project-teams/{v2['id']}/members/{people[0].id}"),
                  headers=world.headers("staff"))
    post(client, world, f"/project-teams/{v2['id']}/members",
         {"members": [{"user_id": str(people[2].id), "role": "Analyst"}]})

    diff = get(client, world, f"/project-teams/{v1['id']}/diff/{v2['id']}")
    assert diff.status_code == 200
    assert diff.json["added"] == [{"user_id": str(people[2].id), "name": "Pupil 2",
                                   "role": "Analyst"}]
    assert diff.json["removed"] == [{"user_id": str(people[0].id), "name": "Pupil 0",
                                     "role": "Lead"}]
    assert (diff.json["from_version"], diff.json["to_version"]) == (1, 2)
    back = get(client, world, f"/project-teams/{v2['id']}/diff/{v1['id']}").json
    assert back["added"] == diff.json["removed"] and back["removed"] == diff.json["added"]

    stranger = make_team(client, world, project, team_name="Other")
    refused = get(client, world, f"/project-teams/{v1['id']}/diff/{stranger['id']}")
    assert refused.status_code == 422 and error(refused)["code"] == "not_same_team"


# Backfill review and correction

@pytest.fixture
def backfilled(world, people, project):
    """Two legacy evaluations naming a group that no longer exists: the backfill infers the
    team from their participants (Pupils 0, 1 and 5, who was never really in it)."""
    from bson import ObjectId

    group_id = ObjectId()
    records = [Evaluation(school_id=world.school.id, project_id=project.id, title=title,
                          group_id=group_id,
                          participant_ids=[people[0].id, people[1].id, people[5].id]).save()
               for title in ("Week 1", "Week 2")]
    TeamBackfill(school_context(SYSTEM, world.school.id)).backfill()
    return records


def test_backfilled_teams_are_listed_for_review_by_source(client, world, people, project,
                                                          backfilled):
    make_team(client, world, project, team_name="Fresh")
    inferred = get(client, world, f"/projects/{project.id}/teams?backfill_source=inferred")
    assert inferred.status_code == 200
    assert [t["backfill_source"] for t in inferred.json["items"]] == ["inference"]
    assert member_ids(inferred.json["items"][0]) == ids([people[0], people[1], people[5]])
    assert get(client, world,
               f"/projects/{project.id}/teams?backfill_source=group").json["total"] == 0
    assert get(client, world, f"/projects/{project.id}/teams?backfill_source=x").status_code \
        == 422


def test_an_admin_corrects_a_backfilled_team_and_relinks_open_records(client, world, people,
                                                                       project, backfilled):
    team = get(client, world, f"/projects/{project.id}/teams?backfill_source=inferred").json[
        "items"][0]
    week1, week2 = backfilled
    client.post(world.url(f"/evaluations/{week2.id}/close"), headers=world.headers("staff"))
    body = {"members": [{"user_id": str(people[0].id)}, {"user_id": str(people[1].id)}],
            "relink_record_ids": [str(week1.id), str(week2.id)]}
    assert post(client, world, f"/project-teams/{team['id']}/correct", body).status_code == 403
    closed = post(client, world, f"/project-teams/{team['id']}/correct", body, role="admin")
    assert closed.status_code == 409 and error(closed)["code"] == "record_closed"
    assert error(closed)["details"]["record_ids"] == [str(week2.id)]
    assert ProjectTeam.objects(project_id=project.id).count() == 1  # nothing written

    body["relink_record_ids"] = [str(week1.id)]
    corrected = post(client, world, f"/project-teams/{team['id']}/correct", body, role="admin")
    assert corrected.status_code == 201, corrected.json
    new = corrected.json["team"]
    assert new["version"] == 2 and new["locked"] is True
    assert member_ids(new) == ids(people[:2])
    assert corrected.json["relinked_record_ids"] == [str(week1.id)]
    relinked = get(client, world, f"/evaluations/{week1.id}").json
    assert relinked["project_team_id"] == new["id"]
    assert set(relinked["member_ids"]) == ids(people[:2])
    untouched = get(client, world, f"/evaluations/{week2.id}").json
    assert untouched["project_team_id"] == team["id"] and len(untouched["member_ids"]) == 3
    assert AuditEvent.objects(action="correct", entity_id=str(new["id"])).count() == 1
    assert AuditEvent.objects(action="correct", entity_type="evaluation",
                              entity_id=str(week1.id)).count() == 1


# A student's teams

def test_a_student_sees_which_team_version_they_were_in_for_each_evaluation(
        client, world, people, project, roundtrips):
    v1 = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{v1['id']}/members",
         {"members": [{"user_id": str(people[0].id), "role": "Lead"},
                      {"user_id": str(people[1].id)}]})
    early = link(client, world, "evaluations", project, v1, title="Early")
    v2 = post(client, world, f"/project-teams/{v1['id']}/versions").json
    post(client, world, f"/project-teams/{v2['id']}/members",
         {"members": [{"user_id": str(people[2].id)}]})
    late = link(client, world, "evaluations", project, v2, title="Late")
    other = make_team(client, world, project, team_name="Solo")
    post(client, world, f"/project-teams/{other['id']}/members",
         {"members": [{"user_id": str(people[0].id)}]})

    with roundtrips() as commands:
        response = get(client, world, f"/students/{people[0].id}/teams")
    assert response.status_code == 200
    assert len(commands) <= 5 + REQUEST_OVERHEAD
    items = response.json
    assert [(i.get("evaluation_id"), i["project_team_id"], i["version"]) for i in items] == [
        (late["id"], v2["id"], 2), (early["id"], v1["id"], 1), (None, other["id"], 1)]
    assert items[1]["members"] == [
        {"user_id": str(people[0].id), "name": "Pupil 0", "role": "Lead"},
        {"user_id": str(people[1].id), "name": "Pupil 1", "role": None}]
    assert {m["user_id"] for m in items[0]["members"]} == ids(people[:3])

    by_evaluation = get(client, world, f"/evaluations?student_id={people[2].id}").json
    assert [e["id"] for e in by_evaluation["items"]] == [late["id"]]
    assert by_evaluation["items"][0]["members"][0]["role"] == "Lead"

    student = world.people["student"]
    mine = client.get(world.url(f"/students/{student.id}/teams"),
                      headers=world.headers(student))
    assert mine.status_code == 200 and mine.json == []
    others = client.get(world.url(f"/students/{people[0].id}/teams"),
                        headers=world.headers(student))
    assert others.status_code == 404


def test_the_students_teams_read_is_constant_in_round_trips(client, world, people, project,
                                                            roundtrips):
    for number in range(6):
        team = make_team(client, world, project, team_name=f"T{number}")
        post(client, world, f"/project-teams/{team['id']}/members",
             {"members": [{"user_id": str(people[0].id)}, {"user_id": str(people[1].id)}]})
        link(client, world, "evaluations", project, team, title=f"E{number}")
    with roundtrips() as commands:
        response = get(client, world, f"/students/{people[0].id}/teams")
    assert len(response.json) == 6
    assert len(commands) <= 5 + REQUEST_OVERHEAD


# Late joiners

def test_a_late_joiner_moves_an_open_evaluation_to_a_new_version(client, world, people,
                                                                 project):
    v1 = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{v1['id']}/members",
         {"members": [{"user_id": str(people[0].id), "role": "Lead"}]})
    open_one = link(client, world, "evaluations", project, v1, title="Open")
    closed_one = link(client, world, "evaluations", project, v1, title="Closed")
    post(client, world, f"/evaluations/{closed_one['id']}/close")

    joined = post(client, world, f"/evaluations/{open_one['id']}/late-joiners",
                  {"user_ids": [str(people[3].id)]})
    assert joined.status_code == 200, joined.json
    assert joined.json["team_version"] == 2 and joined.json["project_team_id"] != v1["id"]
    assert set(joined.json["member_ids"]) == ids([people[0], people[3]])
    assert joined.json["members"][0]["role"] == "Lead"
    new = get(client, world, f"/project-teams/{joined.json['project_team_id']}").json
    assert new["locked"] is True and new["version"] == 2
    assert get(client, world, f"/evaluations/{closed_one['id']}").json["project_team_id"] \
        == v1["id"]
    event = AuditEvent.objects(action="late_joiners", entity_id=str(open_one["id"])).get()
    assert event.after["roster_changed_while_open"] is True

    refused = post(client, world, f"/evaluations/{closed_one['id']}/late-joiners",
                   {"user_ids": [str(people[4].id)]})
    assert refused.status_code == 409 and error(refused)["code"] == "evaluation_closed"
    again = post(client, world, f"/evaluations/{open_one['id']}/late-joiners",
                 {"user_ids": [str(people[3].id)]})
    assert again.status_code == 409 and error(again)["code"] == "already_member"
    assert ProjectTeam.objects(project_id=project.id).count() == 2
