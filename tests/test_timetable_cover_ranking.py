"""The cover ranking as a pure function: hypothesis properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.timetable_cover_ranking import (
    FAIRNESS_RANGE,
    Candidate,
    Limits,
    rank,
    run_length,
    under_caps,
)

limits = st.builds(Limits, max_consecutive=st.integers(1, 8), daily_cap=st.integers(0, 4),
                   weekly_cap=st.integers(0, 10))
candidates = st.lists(st.builds(
    Candidate, staff_id=st.uuids(), name=st.text(min_size=1, max_size=5),
    teaches_class=st.booleans(), same_department=st.booleans(),
    term_covers=st.integers(0, FAIRNESS_RANGE - 1), run_length=st.integers(1, 10),
    covers_today=st.integers(0, 5), covers_this_week=st.integers(0, 12)), max_size=12)


def rule_order(candidate: Candidate, limits: Limits) -> tuple:
    """The rules as documented, most important first, then the name."""
    return (not under_caps(candidate, limits), not candidate.teaches_class,
            not candidate.same_department, candidate.term_covers,
            candidate.run_length > limits.max_consecutive, candidate.name,
            str(candidate.staff_id))


@given(candidates, limits)
def test_the_ranking_is_the_rules_applied_one_after_the_other(found, limits):
    ranked = rank(found, limits)
    expected = sorted(found, key=lambda c: rule_order(c, limits))
    assert [s.staff_id for s in ranked] == [c.staff_id for c in expected]


@given(candidates, limits)
def test_scores_fall_down_the_list_and_every_suggestion_gives_reasons(found, limits):
    ranked = rank(found, limits)
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
    for suggestion in ranked:
        assert any("this term" in reason for reason in suggestion.reasons)
        assert any("in a row" in reason for reason in suggestion.reasons)


@given(st.sets(st.integers(0, 12)), st.integers(0, 12))
def test_run_length_is_the_block_of_busy_periods_through_the_new_one(busy, position):
    taken = busy | {position}
    blocks, current = [], []
    for index in range(14):
        if index in taken:
            current.append(index)
        elif current:
            blocks.append(current)
            current = []
    block = next(b for b in blocks if position in b)
    assert run_length(busy, position) == len(block)
