"""The team lock and versions under real parallel requests (gunicorn, 4 workers, SecantusDB)."""

from __future__ import annotations

import pytest
import requests

from documents.projects import Project
from documents.team_rosters import ProjectTeam
from tests.helpers import parallel, unique

pytestmark = pytest.mark.integration

ADDS = 12


def arrange_team(world, members=()):
    project = Project(school_id=world.school.id, name="Race", slug=unique("race")).save()
    team = ProjectTeam(school_id=world.school.id, project_id=project.id, lineage=unique("l"),
                       display_name_at_time="Racers", members=[{"user_id": m.id}
                                                               for m in members],
                       member_ids=[m.id for m in members]).save()
    return project, team


def test_an_evaluation_always_records_the_roster_that_stays(live):
    world = live.world
    headers = world.headers("staff")
    for round_number in range(3):
        founder, *joiners = [world.add_user(world.school, "student") for _ in range(ADDS + 1)]
        project, team = arrange_team(world, [founder])
        link_at = (round_number * 5) % (ADDS + 1)

        def call(i, team=team, project=project, joiners=joiners, link_at=link_at):
            if i == link_at:
                return requests.post(live.url(world.url("/evaluations")), headers=headers,
                                     json={"project_id": str(project.id), "title": "Review",
                                           "project_team_id": str(team.id)}, timeout=30)
            joiner = joiners[i if i < link_at else i - 1]
            return requests.post(
                live.url(world.url(f"/project-teams/{team.id}/members")), headers=headers,
                json={"members": [{"user_id": str(joiner.id)}]}, timeout=30)

        responses = parallel(ADDS + 1, call)
        evaluation = responses.pop(link_at)
        assert evaluation.status_code == 201, evaluation.text
        recorded = set(evaluation.json()["member_ids"])
        assert str(founder.id) in recorded
        for joiner, response in zip(joiners, responses, strict=True):
            if response.status_code == 200:
                assert str(joiner.id) in recorded
            else:
                assert response.status_code == 409, response.text
                assert response.json()["error"]["code"] == "team_locked"
                assert str(joiner.id) not in recorded
        final = requests.get(live.url(world.url(f"/project-teams/{team.id}")), headers=headers,
                             timeout=30).json()
        assert {m["user_id"] for m in final["members"]} == recorded
        assert final["locked"] is True
        assert final["members_version"] == evaluation.json()["members_version"]


def test_parallel_member_adds_all_land_when_nothing_locks(live):
    world = live.world
    headers = world.headers("staff")
    students = [world.add_user(world.school, "student") for _ in range(ADDS)]
    _, team = arrange_team(world)

    def add(i):
        return requests.post(live.url(world.url(f"/project-teams/{team.id}/members")),
                             headers=headers, timeout=30,
                             json={"members": [{"user_id": str(students[i].id)}]})

    assert [r.status_code for r in parallel(ADDS, add)] == [200] * ADDS
    final = requests.get(live.url(world.url(f"/project-teams/{team.id}")), headers=headers,
                         timeout=30).json()
    assert {m["user_id"] for m in final["members"]} == {str(s.id) for s in students}
    assert final["members_version"] == ADDS


def test_parallel_versions_get_distinct_numbers(live):
    world = live.world
    headers = world.headers("staff")
    _, team = arrange_team(world)

    def new_version(_):
        return requests.post(live.url(world.url(f"/project-teams/{team.id}/versions")),
                             headers=headers, timeout=30)

    responses = parallel(6, new_version)
    assert [r.status_code for r in responses] == [201] * 6
    assert sorted(r.json()["version"] for r in responses) == [2, 3, 4, 5, 6, 7]


def test_parallel_closes_set_closed_at_once(live):
    world = live.world
    headers = world.headers("staff")
    project, team = arrange_team(world)
    evaluation = requests.post(live.url(world.url("/evaluations")), headers=headers, timeout=30,
                               json={"project_id": str(project.id), "title": "Final",
                                     "project_team_id": str(team.id)}).json()

    def close(_):
        return requests.post(live.url(world.url(f"/evaluations/{evaluation['id']}/close")),
                             headers=headers, timeout=30)

    responses = parallel(6, close)
    assert [r.status_code for r in responses] == [200] * 6
    closed_at = {r.json()["closed_at"] for r in responses}
    assert len(closed_at) == 1 and None not in closed_at
    trail = requests.get(live.url(world.url(
        f"/audit?action=close&entity_id={evaluation['id']}")),
        headers=world.headers("admin"), timeout=30).json()
    assert trail["total"] == 1
