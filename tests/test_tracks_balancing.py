"""The balancing rules as properties over random loads, weights, caps and pins (pure
functions, then through the API)."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from math import ceil, floor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import Conflict
from service.tracks_balancing import (
    as_fraction,
    balance_moves,
    balanced_targets,
    capacity,
    is_imbalanced,
    least_loaded_assignment,
    load_flag,
    load_stats,
    weighted_shares,
)

instructor_ids = st.text(alphabet="0123456789abcdef", min_size=4, max_size=4)
loads_maps = st.dictionaries(instructor_ids, st.integers(min_value=0, max_value=60),
                             min_size=1, max_size=7)


@st.composite
def weighted_tracks(draw):
    """Loads with weights (halves up to 4), optional caps and pinned students, within what
    the caps hold even without counting the pinned students above them)."""
    loads = draw(loads_maps)
    weights = {i: draw(st.sampled_from([1, 1, 0.5, 1.5, 2, 3, 4])) for i in loads}
    caps = {i: draw(st.one_of(st.none(), st.integers(min_value=0, max_value=40)))
            for i in loads}
    pinned = {i: draw(st.integers(min_value=0, max_value=load)) for i, load in loads.items()}
    room = capacity(caps)
    if room is not None and sum(loads.values()) > room:
        caps[next(iter(caps))] = None
    return loads, weights, caps, pinned


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


@given(weighted_tracks())
def test_weighted_balancing_stays_within_one_of_the_shares_and_under_the_caps(track):
    loads, weights, caps, _ = track
    after = apply(loads, balance_moves(loads, weights, caps))
    shares = weighted_shares(sum(loads.values()), weights, caps)
    assert all(abs(after[i] - shares[i]) < 1 for i in loads), (after, shares)
    assert all(caps[i] is None or after[i] <= caps[i] for i in loads)
    assert sum(after.values()) == sum(loads.values())


@given(weighted_tracks())
def test_shares_are_proportional_to_weight_where_no_cap_binds(track):
    loads, weights, caps, _ = track
    shares = weighted_shares(sum(loads.values()), weights, caps)
    per_weight = {i: shares[i] / as_fraction(weights[i]) for i in loads}
    free = {per_weight[i] for i in loads if caps[i] is None or shares[i] < caps[i]}
    assert len(free) <= 1  # one level for every instructor below their cap
    capped = [per_weight[i] for i in loads if caps[i] is not None and shares[i] == caps[i]]
    assert all(level <= min(free) for level in capped) if free else True


def fewest_weighted_moves_by_brute_force(loads, weights, caps, pinned) -> int:
    """Every rounding of the shares (each down or up, adding up to the total): the fewest
    students above their rounded share."""
    shares = weighted_shares(sum(loads.values()), weights, caps, pinned)
    total, ids = sum(loads.values()), sorted(loads)
    best = None
    for ups in range(len(ids) + 1):
        for chosen in combinations(ids, ups):
            targets = {i: ceil(shares[i]) if i in chosen else floor(shares[i]) for i in ids}
            if sum(targets.values()) != total:
                continue
            moved = sum(max(0, loads[i] - targets[i]) for i in ids)
            best = moved if best is None else min(best, moved)
    return best


@given(weighted_tracks())
def test_weighted_balancing_moves_the_surplus_and_no_more(track):
    loads, weights, caps, pinned = track
    targets = balanced_targets(loads, weights, caps, pinned)
    moves = balance_moves(loads, weights, caps, pinned)
    moved = sum(amount for _, _, amount in moves)
    assert moved == sum(max(0, loads[i] - targets[i]) for i in loads)
    assert moved == fewest_weighted_moves_by_brute_force(loads, weights, caps, pinned)
    after = apply(loads, moves)
    assert after == targets
    assert all(after[i] >= pinned[i] for i in loads)  # pinned students never leave
    out = Counter()
    for source, _, amount in moves:
        out[source] += amount
    assert all(out[i] <= loads[i] - pinned[i] for i in loads)


@given(weighted_tracks(), st.integers(min_value=0, max_value=60))
def test_newcomers_never_exceed_a_cap_and_nobody_moves(track, newcomers):
    loads, weights, caps, _ = track
    room = capacity(caps, loads)  # students above a lowered cap stay where they are
    if room is not None and sum(loads.values()) + newcomers > room:
        with pytest.raises(Conflict) as refused:
            least_loaded_assignment(loads, newcomers, weights, caps)
        assert refused.value.code == "track_full"
        assert refused.value.details == {"students": sum(loads.values()),
                                         "requested": newcomers, "capacity": room}
        return
    after = Counter(loads)
    after.update(least_loaded_assignment(loads, newcomers, weights, caps))
    assert all(caps[i] is None or after[i] <= max(caps[i], loads[i]) for i in loads)
    assert sum(after.values()) == sum(loads.values()) + newcomers


@given(weighted_tracks(), st.integers(min_value=0, max_value=60))
def test_newcomers_into_an_empty_track_land_within_one_of_the_shares(track, newcomers):
    _, weights, caps, _ = track
    empty = dict.fromkeys(weights, 0)
    room = capacity(caps)
    if room is not None and newcomers > room:
        return
    after = Counter(least_loaded_assignment(empty, newcomers, weights, caps))
    shares = weighted_shares(newcomers, weights, caps)
    assert all(abs(after[i] - shares[i]) < 1 for i in weights)


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=50))
def test_a_load_is_flagged_past_20_percent_of_its_target(students, target):
    flag = load_flag(students, target)
    assert flag == ("over" if students * 5 > target * 6 else
                    "under" if students * 5 < target * 4 else None)


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
    teachers = [world.add_user(world.school, "staff") for _ in loads]
    track = client.post(world.url("/tracks"), json={
        "name": "T", "project_id": project["id"],
        "instructors": [{"user_id": str(teacher.id)} for teacher in teachers]},
        headers=headers).json
    base = f"/tracks/{track['id']}"
    for teacher, load in zip(teachers, loads, strict=True):
        if load:
            pupils = [world.add_user(world.school, "student") for _ in range(load)]
            client.post(world.url(f"{base}/students"),
                        json={"student_ids": [str(p.id) for p in pupils],
                              "instructor_id": str(teacher.id), "pinned": False},
                        headers=headers)
    result = client.post(world.url(f"{base}/balance-students"), headers=headers).json
    by_id = {str(t.id): load for t, load in zip(teachers, loads, strict=True)}
    assert result["students_moved"] == fewest_moves_by_brute_force(by_id)
    assert result["spread"] <= 1
    listed = client.get(world.url(f"{base}/instructor-loads"), headers=headers).json
    assert listed["students"] == sum(loads)
    assert listed["spread"] <= 1
