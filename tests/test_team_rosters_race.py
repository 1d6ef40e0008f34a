"""The team lock and versions under real parallel requests (gunicorn, 4 workers, SecantusDB)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests

from documents.projects import Project
from documents.team_rosters import ProjectTeam
from scripts.invariants import linked_rosters_not_frozen
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


PEOPLE = 10  # each is added and removed: 20 roster edits, the link fired in the middle
LINK_AT = PEOPLE  # calls 0..9 and 11..20 edit, call 10 links
STAGGER = 0.004  # seconds between the starts of two consecutive calls


def test_no_roster_edit_lands_after_the_lock(live):
    """20 parallel edits (add then remove each of 10 people) of one team with an evaluation
    linked in the middle. The evaluation records the locked roster, which is exactly the
    founder plus everyone whose add answered 200 and whose remove did not; the locked team
    counts exactly the edits that answered 2xx (none landed after the lock); every refused
    edit is a remove of someone not (yet) in the team (404) or 409 `team_locked`."""
    world = live.world
    headers = world.headers("staff")
    seen = Counter()
    for _ in range(3):
        founder, *people = [world.add_user(world.school, "student") for _ in range(PEOPLE + 1)]
        project, team = arrange_team(world, [founder])
        members_url = live.url(world.url(f"/project-teams/{team.id}/members"))

        def call(i, project=project, team=team, people=people, members_url=members_url):
            time.sleep(i * STAGGER)
            if i == LINK_AT:
                return requests.post(live.url(world.url("/evaluations")), headers=headers,
                                     json={"project_id": str(project.id), "title": "Review",
                                           "project_team_id": str(team.id)}, timeout=30)
            edit = i if i < LINK_AT else i - 1
            person = people[edit // 2]
            if edit % 2 == 0:
                return requests.post(members_url, headers=headers, timeout=30,
                                     json={"members": [{"user_id": str(person.id)}]})
            return requests.delete(f"{members_url}/{person.id}", headers=headers, timeout=30)

        responses = parallel(2 * PEOPLE + 1, call)
        evaluation = responses.pop(LINK_AT)
        assert evaluation.status_code == 201, evaluation.text
        adds, removes = responses[0::2], responses[1::2]
        for response in responses:
            assert response.status_code in (200, 204, 404, 409), response.text
            if response.status_code == 409:
                assert response.json()["error"]["code"] == "team_locked"
        for add, remove in zip(adds, removes, strict=True):
            assert add.status_code in (200, 409)
            if remove.status_code == 204:
                assert add.status_code == 200  # only a member can be removed
        expected = {str(founder.id)} | {
            str(person.id) for person, add, remove in zip(people, adds, removes, strict=True)
            if add.status_code == 200 and remove.status_code != 204}
        landed = sum(r.status_code in (200, 204) for r in responses)
        assert set(evaluation.json()["member_ids"]) == expected
        assert evaluation.json()["members_version"] == landed
        final = requests.get(live.url(world.url(f"/project-teams/{team.id}")), headers=headers,
                             timeout=30).json()
        assert final["locked"] is True
        assert {m["user_id"] for m in final["members"]} == expected
        assert final["members_version"] == landed
        stored = ProjectTeam.objects.get(school_id=world.school.id, id=team.id)
        assert set(map(str, stored.member_ids)) == {str(m.user_id) for m in stored.members}
        seen.update("landed" if r.status_code in (200, 204) else r.status_code
                    for r in responses)
    # the lock really fell in the middle of the edits: some landed before it, some were refused
    assert seen["landed"] > 0 and seen[409] > 0, seen
    assert linked_rosters_not_frozen(ProjectTeam._get_db(), [world.school.id]) == []


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


def test_parallel_links_lock_once_and_record_one_roster(live):
    world = live.world
    headers = world.headers("staff")
    members = [world.add_user(world.school, "student") for _ in range(3)]
    project, team = arrange_team(world, members)

    def create(i):
        return requests.post(live.url(world.url("/evaluations")), headers=headers, timeout=30,
                             json={"project_id": str(project.id), "title": f"Review {i}",
                                   "project_team_id": str(team.id)})

    responses = parallel(6, create)
    assert [r.status_code for r in responses] == [201] * 6
    assert {frozenset(r.json()["member_ids"]) for r in responses} == {
        frozenset(str(m.id) for m in members)}
    locks = requests.get(live.url(world.url(f"/audit?action=lock&entity_id={team.id}")),
                         headers=world.headers("admin"), timeout=30).json()
    assert locks["total"] == 1
