"""An archived project is read-only for its project teams too: every team write answers 409
`project_archived` and changes nothing; reads still work; archiving again finishes an archive
that crashed before its teams step; roster edits and team creates racing an archive (live)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests

from documents.audit import AuditEvent
from documents.projects import Project
from documents.team_rosters import Evaluation, NoteContext, ProjectAssessment, ProjectTeam
from documents.tracks import Track
from service.team_rosters import RosterService
from tests.helpers import parallel, unique


def post(client, world, path, body=None, role="staff"):
    return client.post(world.url(path), json=body or {}, headers=world.headers(role))


def created(response):
    assert response.status_code in (200, 201), response.json
    return response.json


def archive(client, world, project_id):
    return client.patch(world.url(f"/projects/{project_id}"), json={"status": "archived"},
                        headers=world.headers("admin"))


def stored_state(school_id):
    """Every team version and linked record of the school, as stored."""
    return {model.__name__: sorted(model.objects(school_id=school_id).as_pymongo(),
                                   key=lambda doc: str(doc["_id"]))
            for model in (ProjectTeam, Evaluation, ProjectAssessment, NoteContext)}


@pytest.fixture
def people(world):
    return [world.add_user(world.school, "student", name=f"Pupil {i}") for i in range(6)]


def test_every_team_write_of_an_archived_project_answers_409_and_changes_nothing(
        client, world, people):
    project = created(post(client, world, "/projects", {"name": "Robotics"}, role="admin"))
    sub = created(post(client, world, f"/projects/{project['id']}/sub-projects",
                       {"name": "Q1"}, role="admin"))
    other = created(post(client, world, "/projects", {"name": "Other"}, role="admin"))
    group = created(post(client, world, "/groups", {
        "name": "Blue", "member_ids": [str(p.id) for p in people[:2]]}))
    teams = f"/projects/{project['id']}/teams"
    from_group = created(post(client, world, teams, {"team_id": group["id"]}))
    open_team = created(post(client, world, teams, {"team_name": "Open"}))
    created(post(client, world, f"/project-teams/{open_team['id']}/members",
                 {"members": [{"user_id": str(people[2].id)}]}))
    linked_team = created(post(client, world, teams, {"team_name": "Linked"}))
    created(post(client, world, f"/project-teams/{linked_team['id']}/members",
                 {"members": [{"user_id": str(people[3].id)}]}))
    evaluation = created(post(client, world, "/evaluations", {
        "project_id": project["id"], "project_team_id": linked_team["id"], "title": "Review"}))
    doomed = created(post(client, world, teams, {"team_name": "Doomed"}))
    sub_team = created(post(client, world, f"/projects/{sub['id']}/teams",
                            {"team_name": "Sub team"}))
    created(post(client, world, f"/projects/{other['id']}/teams", {"team_name": "Elsewhere"}))

    archived = archive(client, world, project["id"])
    assert archived.status_code == 200, archived.json
    flagged = ProjectTeam.objects(school_id=world.school.id, archived=True)
    assert {str(t.id) for t in flagged} == {from_group["id"], open_team["id"],
                                            linked_team["id"], doomed["id"], sub_team["id"]}
    before = stored_state(world.school.id)

    def link(kind, team):
        return post(client, world, f"/{kind}", {"project_id": project["id"],
                                                "project_team_id": team["id"], "title": "X"})

    refused = {
        "create": post(client, world, teams, {"team_name": "New"}),
        "re-create from the group": post(client, world, teams, {"team_id": group["id"]}),
        "create in the sub-project": post(client, world, f"/projects/{sub['id']}/teams",
                                          {"team_name": "New"}),
        "clone into": post(client, world, f"/projects/{project['id']}/teams/clone-from/"
                                          f"{other['id']}"),
        "add member": post(client, world, f"/project-teams/{open_team['id']}/members",
                           {"members": [{"user_id": str(people[4].id)}]}),
        "remove member": client.delete(
            world.url(f"/project-teams/{open_team['id']}/members/{people[2].id}"),
            headers=world.headers("staff")),
        "sub-project team member": post(client, world,
                                        f"/project-teams/{sub_team['id']}/members",
                                        {"members": [{"user_id": str(people[4].id)}]}),
        "new version": post(client, world, f"/project-teams/{open_team['id']}/versions"),
        "link an evaluation": link("evaluations", open_team),
        "link an assessment": link("project-assessments", open_team),
        "link a note context": link("note-contexts", open_team),
        "link a locked team": link("evaluations", linked_team),
        "correct": post(client, world, f"/project-teams/{linked_team['id']}/correct",
                        {"members": [{"user_id": str(people[5].id)}],
                         "relink_record_ids": [evaluation["id"]]}, role="admin"),
        "late joiner": post(client, world, f"/evaluations/{evaluation['id']}/late-joiners",
                            {"user_ids": [str(people[5].id)]}),
        "delete team": client.delete(world.url(f"/project-teams/{doomed['id']}"),
                                     headers=world.headers("staff")),
    }
    for what, response in refused.items():
        assert response.status_code == 409, (what, response.json)
        assert response.json["error"]["code"] == "project_archived", (what, response.json)
    assert stored_state(world.school.id) == before

    # reads still work, and show the team as archived
    listed = client.get(world.url(f"{teams}?latest=true"), headers=world.headers("staff"))
    assert listed.status_code == 200
    assert {t["display_name_at_time"] for t in listed.json["items"]} == {
        "Blue", "Open", "Linked", "Doomed"}
    assert all(t["archived"] for t in listed.json["items"])
    detail = client.get(world.url(f"/project-teams/{open_team['id']}"),
                        headers=world.headers("staff"))
    assert detail.status_code == 200 and detail.json["archived"] is True
    assert {m["user_id"] for m in detail.json["members"]} == {str(people[2].id)}
    assert client.get(world.url(f"/project-teams/{open_team['id']}/members"),
                      headers=world.headers("staff")).json["total"] == 1
    assert client.get(world.url(f"/evaluations/{evaluation['id']}"),
                      headers=world.headers("staff")).json["member_ids"] == [str(people[3].id)]
    mine = client.get(world.url(f"/students/{people[3].id}/teams"),
                      headers=world.headers("staff"))
    assert mine.status_code == 200 and mine.json[0]["evaluation_id"] == evaluation["id"]
    # the other project's team is not archived and still changes
    assert ProjectTeam.objects(school_id=world.school.id, project_id=other["id"],
                               archived=True).count() == 0


def test_archiving_counts_the_teams_it_flags_and_archiving_again_adds_nothing(client, world):
    project = created(post(client, world, "/projects", {"name": "Robotics"}, role="admin"))
    teams = f"/projects/{project['id']}/teams"
    team = created(post(client, world, teams, {"team_name": "One"}))
    created(post(client, world, teams, {"team_name": "Two"}))
    assert archive(client, world, project["id"]).status_code == 200
    event = AuditEvent.objects(school_id=world.school.id, entity_id=project["id"],
                               action="status").get()
    assert event.after["project_teams"] == 2
    version = ProjectTeam.objects(id=team["id"]).get().version
    assert archive(client, world, project["id"]).status_code == 200
    assert ProjectTeam.objects(id=team["id"]).get().version == version  # nothing written again


def test_archiving_again_finishes_an_archive_that_crashed_after_its_tracks_step(
        client, world, people):
    project = created(post(client, world, "/projects", {"name": "Robotics"}, role="admin"))
    sub = created(post(client, world, f"/projects/{project['id']}/sub-projects",
                       {"name": "Q1"}, role="admin"))
    team = created(post(client, world, f"/projects/{project['id']}/teams",
                        {"team_name": "Top"}))
    sub_team = created(post(client, world, f"/projects/{sub['id']}/teams",
                            {"team_name": "Below"}))
    # the archive wrote the project, the sub-project and the tracks, then stopped
    Project.objects(id__in=[project["id"], sub["id"]]).update(set__status="archived")
    Track.objects(school_id=world.school.id, root_project_id=project["id"]).update(
        set__archived=True)
    assert ProjectTeam.objects(school_id=world.school.id, archived=True).count() == 0

    assert archive(client, world, project["id"]).status_code == 200
    assert {str(t.id) for t in ProjectTeam.objects(school_id=world.school.id, archived=True)} \
        == {team["id"], sub_team["id"]}
    for team_id in (team["id"], sub_team["id"]):
        refused = post(client, world, f"/project-teams/{team_id}/members",
                       {"members": [{"user_id": str(people[0].id)}]})
        assert refused.status_code == 409
        assert refused.json["error"]["code"] == "project_archived"


def test_a_team_inserted_while_the_project_is_archived_removes_itself(
        client, world, people, monkeypatch):
    """The check before the insert saw the project open; the archive came in between: the
    check after the insert sees it, and the team goes again."""
    project = created(post(client, world, "/projects", {"name": "Robotics"}, role="admin"))
    source = created(post(client, world, f"/projects/{project['id']}/teams",
                          {"team_name": "Source"}))
    Project.objects(id=project["id"]).update(set__status="archived")  # archive under way
    monkeypatch.setattr(RosterService, "refuse_if_archived", lambda self, project_id: None)
    before = stored_state(world.school.id)
    for response in (
            post(client, world, f"/projects/{project['id']}/teams", {"team_name": "Late"}),
            post(client, world, f"/project-teams/{source['id']}/versions")):
        assert response.status_code == 409, response.json
        assert response.json["error"]["code"] == "project_archived"
    assert stored_state(world.school.id) == before


def test_a_record_linked_while_the_project_is_archived_removes_itself(client, world, people):
    """The archive set the project's status but has not flagged its teams yet: the lock
    lands, the record sees the archive after its insert and goes again."""
    project = created(post(client, world, "/projects", {"name": "Robotics"}, role="admin"))
    team = created(post(client, world, f"/projects/{project['id']}/teams",
                        {"team_name": "Team"}))
    Project.objects(id=project["id"]).update(set__status="archived")  # archive under way
    response = post(client, world, "/evaluations", {
        "project_id": project["id"], "project_team_id": team["id"], "title": "Review"})
    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "project_archived"
    assert Evaluation.objects(school_id=world.school.id).count() == 0


# ---- live: roster edits and team creates racing an archive ----

PEOPLE = 8  # 8 adds of new people, 8 removes of founders, 4 creates, 1 archive
CREATES = 4
STAGGER = 0.004  # seconds between the starts of two consecutive calls


@pytest.mark.integration
def test_no_team_write_lands_after_the_archive(live):
    """21 parallel calls: roster edits of one team and team creates, with the project's
    archive fired in the middle. Every call answers 2xx or 409 `project_archived`; the team
    counts exactly the edits that answered 2xx (`members_version`) and holds exactly their
    result; every team whose create answered 201 exists and is flagged archived, none whose
    create answered 409 does; after the archive answered, an edit is refused."""
    world = live.world
    staff, admin = world.headers("staff"), world.headers("admin")
    seen = Counter()
    for _ in range(3):
        founders = [world.add_user(world.school, "student") for _ in range(PEOPLE)]
        joiners = [world.add_user(world.school, "student") for _ in range(PEOPLE)]
        project = Project(school_id=world.school.id, name="Race",
                          slug=unique("race")).save()
        team = ProjectTeam(school_id=world.school.id, project_id=project.id,
                           lineage=unique("l"), display_name_at_time="Racers",
                           members=[{"user_id": f.id} for f in founders],
                           member_ids=[f.id for f in founders]).save()
        members_url = live.url(world.url(f"/project-teams/{team.id}/members"))
        calls = 2 * PEOPLE + CREATES + 1
        archive_at = calls // 2

        def call(i, project=project, founders=founders, joiners=joiners,
                 members_url=members_url, archive_at=archive_at):
            time.sleep(i * STAGGER)
            if i == archive_at:
                return requests.patch(live.url(world.url(f"/projects/{project.id}")),
                                      headers=admin, json={"status": "archived"}, timeout=30)
            n = i if i < archive_at else i - 1
            if n % 5 == 4:
                return requests.post(live.url(world.url(f"/projects/{project.id}/teams")),
                                     headers=staff, json={"team_name": f"New {n}"},
                                     timeout=30)
            person = n - (n + 1) // 5  # 0..15 over the edit calls
            if person % 2 == 0:
                return requests.post(members_url, headers=staff, timeout=30, json={
                    "members": [{"user_id": str(joiners[person // 2].id)}]})
            return requests.delete(f"{members_url}/{founders[person // 2].id}",
                                   headers=staff, timeout=30)

        responses = parallel(calls, call)
        archived = responses.pop(archive_at)
        assert archived.status_code == 200, archived.text
        edits = [r for n, r in enumerate(responses) if n % 5 != 4]
        creates = [r for n, r in enumerate(responses) if n % 5 == 4]
        assert len(edits) == 2 * PEOPLE and len(creates) == CREATES
        for response in responses:
            assert response.status_code in (200, 201, 204, 409), response.text
            if response.status_code == 409:
                assert response.json()["error"]["code"] == "project_archived", response.text
        expected = {str(f.id) for f, remove in zip(founders, edits[1::2], strict=True)
                    if remove.status_code != 204}
        expected |= {str(j.id) for j, add in zip(joiners, edits[0::2], strict=True)
                     if add.status_code == 200}
        landed = sum(r.status_code in (200, 204) for r in edits)
        stored = ProjectTeam.objects.get(school_id=world.school.id, id=team.id)
        assert stored.archived is True
        assert stored.members_version == landed
        assert {str(uid) for uid in stored.member_ids} == expected
        assert {str(m.user_id) for m in stored.members} == expected
        made = {r.json()["id"] for r in creates if r.status_code == 201}
        others = ProjectTeam.objects(school_id=world.school.id, project_id=project.id,
                                     id__ne=team.id)
        assert {str(t.id) for t in others} == made
        assert all(t.archived for t in others)
        after = requests.post(members_url, headers=staff, timeout=30, json={
            "members": [{"user_id": str(world.add_user(world.school, "student").id)}]})
        assert after.status_code == 409 and after.json()["error"]["code"] == \
            "project_archived"
        seen.update("landed" if r.status_code in (200, 201, 204) else r.status_code
                    for r in responses)
    # the archive really fell in the middle: some writes landed before it, some were refused
    assert seen["landed"] > 0 and seen[409] > 0, seen
