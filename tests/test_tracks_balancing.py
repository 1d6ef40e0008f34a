"""The balancing rules as properties over random loads (pure functions, then through the API)."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.tracks_balancing import (
    balance_moves,
    balanced_targets,
    is_imbalanced,
    least_loaded_assignment,
    load_stats,
)

instructor_ids = st.text(alphabet="0123456789abcdef", min_size=4, max_size=4)
loads_maps = st.dictionaries(instructor_ids, st.integers(min_value=0, max_value=60),
                             min_size=1, max_size=7)


def apply(loads: dict, moves: list) -> dict:
    after = dict(loads)
    for source, target, amount in moves:
        after[source] -= amount
        after[target] += amount
    return after


def fewest_moves_by_brute_force(loads: dict) -> int:
    """Try every choice of which instructors keep the extra student."""
    base, extra = divmod(sum(loads.values()), len(loads))
    best = None
    for heavier in combinations(loads, extra):
        moved = sum(max(0, load - base - (1 if i in heavier else 0))
                    for i, load in loads.items())
        best = moved if best is None else min(best, moved)
    return best


@given(loads_maps)
def test_balancing_reaches_a_spread_of_at_most_one(loads):
    after = apply(loads, balance_moves(loads))
    assert max(after.values()) - min(after.values()) <= 1
    assert sum(after.values()) == sum(loads.values())
    assert all(load >= 0 for load in after.values())


@given(loads_maps)
def test_balancing_moves_the_fewest_students(loads):
    moves = balance_moves(loads)
    assert sum(amount for _, _, amount in moves) == fewest_moves_by_brute_force(loads)
    assert all(amount > 0 and source != target for source, target, amount in moves)


@given(loads_maps)
def test_balanced_loads_need_no_moves(loads):
    targets = balanced_targets(loads)
    assert balance_moves(targets) == []


@given(loads_maps, st.integers(min_value=0, max_value=200))
def test_newcomers_each_go_to_the_least_loaded(loads, newcomers):
    chosen = least_loaded_assignment(loads, newcomers)
    current = dict(loads)
    for instructor in chosen:
        lightest = min(current.values())
        assert current[instructor] == lightest
        assert instructor == min(i for i, load in current.items() if load == lightest)
        current[instructor] += 1
    assert Counter(chosen) == Counter({i: current[i] - loads[i] for i in loads
                                       if current[i] > loads[i]})


@given(st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=20))
def test_stats_and_imbalance_warning(counts):
    stats = load_stats(counts)
    assert stats["spread"] == max(counts) - min(counts)
    mean = sum(counts) / len(counts)
    assert stats["stddev"] >= 0
    assert is_imbalanced(counts) == (mean > 0 and max(counts) > 1.2 * mean)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=12), min_size=2, max_size=4))
def test_balance_through_the_api_over_random_loads(client, world, loads):
    headers = world.headers("admin")
    project = client.post(world.url("/projects"), json={"name": "P"}, headers=headers).json
    track = client.post(world.url("/tracks"), json={"name": "T", "project_id": project["id"]},
                        headers=headers).json
    base = f"/tracks/{track['id']}"
    teachers = [world.add_user(world.school, "staff") for _ in loads]
    for teacher, load in zip(teachers, loads, strict=True):
        client.post(world.url(f"{base}/instructors"), json={"user_id": str(teacher.id)},
                    headers=headers)
        if load:
            pupils = [world.add_user(world.school, "student") for _ in range(load)]
            client.post(world.url(f"{base}/students"),
                        json={"student_ids": [str(p.id) for p in pupils],
                              "instructor_id": str(teacher.id)}, headers=headers)
    result = client.post(world.url(f"{base}/balance-students"), headers=headers).json
    by_id = {str(t.id): load for t, load in zip(teachers, loads, strict=True)}
    assert result["students_moved"] == fewest_moves_by_brute_force(by_id)
    assert result["spread"] <= 1
    listed = client.get(world.url(f"{base}/instructor-loads"), headers=headers).json
    assert listed["students"] == sum(loads)
    assert listed["spread"] <= 1
