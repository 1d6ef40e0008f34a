"""Splitting a course group into teams: the pure planner's properties, and the endpoint."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from documents.audit import AuditEvent
from documents.team_rosters import CourseGroup
from service.team_rosters_split import plan_split
from tests.test_team_rosters import make_group, post

DEPARTMENTS = st.sampled_from([None, "Art", "Maths", "Science"])


@st.composite
def splits(draw):
    values = draw(st.lists(DEPARTMENTS, min_size=1, max_size=60))
    members = list(enumerate(values))
    teams = draw(st.integers(min_value=1, max_value=len(members)))
    return members, teams, draw(st.integers(min_value=0, max_value=2**31 - 1)), draw(st.booleans())


@given(splits())
def test_every_member_is_in_exactly_one_team_and_sizes_differ_by_at_most_one(case):
    members, teams, seed, balance = case
    plan = plan_split(members, teams, seed, balance)
    assert len(plan) == teams
    assert sorted(m for team in plan for m in team) == [m for m, _ in members]
    sizes = [len(team) for team in plan]
    assert max(sizes) - min(sizes) <= 1


@given(splits())
def test_the_same_seed_gives_the_same_teams(case):
    members, teams, seed, balance = case
    assert plan_split(members, teams, seed, balance) == plan_split(list(members), teams, seed,
                                                                   balance)


@given(splits())
def test_balanced_each_value_is_spread_evenly(case):
    members, teams, seed, _ = case
    value_of = dict(members)
    plan = plan_split(members, teams, seed, balance=True)
    for value in set(value_of.values()):
        counts = [sum(value_of[m] == value for m in team) for team in plan]
        assert max(counts) - min(counts) <= 1, (value, counts)


def test_different_seeds_shuffle_differently():
    members = [(i, None) for i in range(30)]
    assert len({tuple(map(tuple, plan_split(members, 3, seed))) for seed in range(5)}) > 1


def test_a_preview_is_exactly_what_the_split_then_writes(client, world):
    people = [world.add_user(world.school, "student", name=f"P{i}",
                             department=("Art", "Maths", "Science")[i % 3]) for i in range(10)]
    group = make_group(client, world, people, name="Year 9")
    body = {"teams": 3, "balance_by": "department", "dry_run": True}
    preview = post(client, world, f"/groups/{group['id']}/split", body)
    assert preview.status_code == 200, preview.json
    assert CourseGroup.objects(school_id=world.school.id).count() == 1
    teams = preview.json["teams"]
    assert sorted(len(t["member_ids"]) for t in teams) == [3, 3, 4]
    for team in teams:
        assert max(Counter(m["value"] for m in team["members"]).values()) <= 2
        assert team["id"] is None

    body.update(dry_run=False, seed=preview.json["seed"])
    done = post(client, world, f"/groups/{group['id']}/split", body)
    assert done.status_code == 200
    assert [t["member_ids"] for t in done.json["teams"]] == [t["member_ids"] for t in teams]
    assert [t["name"] for t in done.json["teams"]] == ["Year 9 team 1", "Year 9 team 2",
                                                       "Year 9 team 3"]
    stored = {str(g.id): [str(u) for u in g.member_ids]
              for g in CourseGroup.objects(school_id=world.school.id)}
    assert all(stored[t["id"]] == t["member_ids"] for t in done.json["teams"])
    assert stored[group["id"]] == group["member_ids"]  # the source group stays
    assert AuditEvent.objects(action="split", school_id=world.school.id).count() == 3


def test_split_by_size_and_the_refusals(client, world):
    people = [world.add_user(world.school, "student") for _ in range(7)]
    group = make_group(client, world, people)
    by_size = post(client, world, f"/groups/{group['id']}/split",
                   {"size": 3, "seed": 1, "dry_run": True}).json
    assert sorted(len(t["member_ids"]) for t in by_size["teams"]) == [2, 2, 3]
    for body in ({}, {"teams": 2, "size": 3}, {"teams": 8}, {"teams": 2, "balance_by": "email"}):
        refused = post(client, world, f"/groups/{group['id']}/split", body)
        assert refused.status_code == 422, body
    assert post(client, world, f"/groups/{group['id']}/split", {"teams": 2},
                role="student").status_code == 403
