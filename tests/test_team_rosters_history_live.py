"""Versions and deletion under real parallel requests (gunicorn, 4 workers, SecantusDB)."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from documents.audit import AuditEvent
from documents.projects import Project
from documents.team_rosters import CourseGroup, Evaluation, ProjectTeam, ProjectTeamsClosing
from tests.helpers import parallel, unique

pytestmark = pytest.mark.integration

CREATES = 5
ROUNDS = 4


def call(live, method, path, **kwargs):
    return requests.request(method, live.url(live.world.url(path)), timeout=30, **kwargs)


def test_parallel_creates_from_one_group_make_consecutive_versions(live):
    """Five creates from one group at once: five 201s, versions exactly 1..5 of one team."""
    world = live.world
    headers = world.headers("staff")
    project = Project(school_id=world.school.id, name="Race", slug=unique("race")).save()
    student = world.add_user(world.school, "student")
    group = CourseGroup(school_id=world.school.id, name="Blue", member_ids=[student.id]).save()

    responses = parallel(CREATES, lambda i: call(
        live, "POST", f"/projects/{project.id}/teams", headers=headers,
        json={"team_id": str(group.id)}))
    assert Counter(r.status_code for r in responses) == {201: CREATES}, [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == list(range(1, CREATES + 1))
    assert len({r.json()["lineage"] for r in responses}) == 1
    newest = max(responses, key=lambda r: r.json()["version"]).json()
    current = ProjectTeam.objects(project_id=project.id, superseded=False)
    assert [str(team.id) for team in current] == [newest["id"]]


def test_a_team_linked_while_its_project_is_deleted_is_never_left_without_it(live):
    """The project delete and an evaluation linking its only team, at once, a few rounds:
    exactly one wins. Either the project and team are gone and no evaluation exists, or the
    delete answered 409 project_has_teams and the evaluation links the locked team."""
    world = live.world
    outcomes = Counter()
    for _ in range(ROUNDS):
        project = Project(school_id=world.school.id, name="Doomed", slug=unique("doomed")).save()
        team = ProjectTeam(school_id=world.school.id, project_id=project.id,
                           lineage=unique("l"), display_name_at_time="Crew").save()

        def race(i, project=project, team=team):
            if i == 0:
                return call(live, "DELETE", f"/projects/{project.id}",
                            headers=world.headers("admin"))
            return call(live, "POST", "/evaluations", headers=world.headers("staff"),
                        json={"project_id": str(project.id), "project_team_id": str(team.id),
                              "title": "Review"})

        deleted, linked = parallel(2, race)
        outcomes[(deleted.status_code, linked.status_code)] += 1
        evaluations = Evaluation.objects(project_id=project.id)
        if deleted.status_code == 204:
            assert linked.status_code in (404, 422), linked.text
            assert Project.objects(id=project.id).count() == 0
            assert ProjectTeam.objects(project_id=project.id).count() == 0
            assert evaluations.count() == 0
        else:
            assert deleted.status_code == 409, deleted.text
            assert deleted.json()["error"]["code"] == "project_has_teams"
            assert linked.status_code == 201, linked.text
            assert evaluations.get().project_team_id == team.id
            assert ProjectTeam.objects.get(id=team.id).locked
        assert ProjectTeamsClosing.objects(project_id=project.id).count() == 0
    assert sum(outcomes.values()) == ROUNDS


def test_a_team_created_while_its_project_is_deleted_does_not_outlive_it(live):
    """The project delete and a team create, at once: the delete always goes through (no
    team is linked) and whatever the create answers (201 when it came first: the delete took
    its team too; 409 project_deleting or 404 after), no team of the project remains."""
    world = live.world
    for _ in range(ROUNDS):
        project = Project(school_id=world.school.id, name="Doomed", slug=unique("doomed")).save()

        def race(i, project=project):
            if i == 0:
                return call(live, "DELETE", f"/projects/{project.id}",
                            headers=world.headers("admin"))
            return call(live, "POST", f"/projects/{project.id}/teams",
                        headers=world.headers("staff"), json={"team_name": "Late"})

        deleted, created = parallel(2, race)
        assert deleted.status_code == 204, deleted.text
        assert created.status_code in (201, 404, 409), created.text
        if created.status_code == 409:
            assert created.json()["error"]["code"] == "project_deleting"
        assert Project.objects(id=project.id).count() == 0
        assert ProjectTeam.objects(project_id=project.id).count() == 0


def test_a_late_joiner_racing_the_close_never_changes_a_closed_evaluation(live):
    """A late joiner and the close of the same evaluation, at once, a few rounds. Either the
    joiner came first (200, then the close froze the new roster) or the close did (409
    evaluation_closed, the old roster stays); in both, the closed evaluation's roster is that
    of the locked team version it links, and the audit names a relink only when it landed."""
    world = live.world
    headers = world.headers("staff")
    for _ in range(ROUNDS):
        founder, joiner = (world.add_user(world.school, "student") for _ in range(2))
        project = Project(school_id=world.school.id, name="Open", slug=unique("open")).save()
        team = ProjectTeam(school_id=world.school.id, project_id=project.id,
                           lineage=unique("l"), display_name_at_time="Crew",
                           members=[{"user_id": founder.id}], member_ids=[founder.id]).save()
        evaluation = call(live, "POST", "/evaluations", headers=headers,
                          json={"project_id": str(project.id), "project_team_id": str(team.id),
                                "title": "Review"}).json()

        def race(i, evaluation=evaluation, joiner=joiner):
            if i == 0:
                return call(live, "POST", f"/evaluations/{evaluation['id']}/close",
                            headers=headers)
            return call(live, "POST", f"/evaluations/{evaluation['id']}/late-joiners",
                        headers=headers, json={"user_ids": [str(joiner.id)]})

        closed, joined = parallel(2, race)
        assert closed.status_code == 200, closed.text
        final = Evaluation.objects.get(id=evaluation["id"])
        linked = ProjectTeam.objects.get(id=final.project_team_id)
        assert final.status == "closed" and linked.locked
        assert final.member_ids == linked.member_ids
        relinks = AuditEvent.objects(action="late_joiners", entity_id=evaluation["id"]).count()
        assert relinks == (joined.status_code == 200)
        if joined.status_code == 200:
            assert final.member_ids == [founder.id, joiner.id]
            assert linked.team_version == 2
        else:
            assert joined.status_code == 409, joined.text
            assert joined.json()["error"]["code"] == "evaluation_closed"
            assert final.member_ids == [founder.id] and final.project_team_id == team.id
