"""Ranking the free staff for one lesson to cover: pure, no database.

The rules, most important first; a rule decides only between candidates that all the rules
above it leave equal:
  1. under the school's daily and weekly cover caps (a cap is a limit the school set);
  2. already teaches a class of the lesson (they know the pupils and where they are);
  3. same department as the absent teacher (they know the subject);
  4. fewest covers this term (fairness);
  5. the cover does not make a run of more than N consecutive periods that day;
  then the name, so the order is stable.
`score` orders the same way (higher is better) and every suggestion says why in `reasons`.
"""

from __future__ import annotations

from dataclasses import dataclass

# weights that keep the rules strictly ordered: each outweighs every rule below it
UNDER_CAPS, TEACHES_CLASS, SAME_DEPARTMENT = 100_000_000, 10_000_000, 1_000_000
FAIRNESS_RANGE = 100_000  # term covers beyond this count as this many
SHORT_RUN = 1


@dataclass(frozen=True)
class Limits:
    max_consecutive: int
    daily_cap: int
    weekly_cap: int


@dataclass(frozen=True)
class Candidate:
    staff_id: object
    name: str
    teaches_class: bool
    same_department: bool
    term_covers: int
    run_length: int  # consecutive periods they would teach that day, this cover included
    covers_today: int
    covers_this_week: int


@dataclass(frozen=True)
class Suggestion:
    staff_id: object
    name: str
    score: int
    reasons: list[str]


def under_caps(candidate: Candidate, limits: Limits) -> bool:
    return (candidate.covers_today < limits.daily_cap
            and candidate.covers_this_week < limits.weekly_cap)


def score(candidate: Candidate, limits: Limits) -> int:
    return (UNDER_CAPS * under_caps(candidate, limits)
            + TEACHES_CLASS * candidate.teaches_class
            + SAME_DEPARTMENT * candidate.same_department
            + 10 * (FAIRNESS_RANGE - min(candidate.term_covers, FAIRNESS_RANGE))
            + SHORT_RUN * (candidate.run_length <= limits.max_consecutive))


def reasons(candidate: Candidate, limits: Limits) -> list[str]:
    said = []
    if candidate.covers_today >= limits.daily_cap:
        said.append(f"at the daily cover cap ({candidate.covers_today} of "
                    f"{limits.daily_cap} today)")
    if candidate.covers_this_week >= limits.weekly_cap:
        said.append(f"at the weekly cover cap ({candidate.covers_this_week} of "
                    f"{limits.weekly_cap} this week)")
    if under_caps(candidate, limits):
        said.append(f"under the cover caps ({candidate.covers_today} of {limits.daily_cap} "
                    f"today, {candidate.covers_this_week} of {limits.weekly_cap} this week)")
    if candidate.teaches_class:
        said.append("already teaches this class")
    if candidate.same_department:
        said.append("same department")
    said.append(f"{candidate.term_covers} cover{'s' if candidate.term_covers != 1 else ''} "
                f"this term")
    if candidate.run_length > limits.max_consecutive:
        said.append(f"would teach {candidate.run_length} periods in a row (more than "
                    f"{limits.max_consecutive})")
    else:
        said.append(f"{candidate.run_length} period{'s' if candidate.run_length != 1 else ''}"
                    f" in a row at most")
    return said


def rank(candidates: list[Candidate], limits: Limits) -> list[Suggestion]:
    """Best first."""
    scored = [(score(c, limits), c) for c in candidates]
    scored.sort(key=lambda pair: (-pair[0], pair[1].name, str(pair[1].staff_id)))
    return [Suggestion(c.staff_id, c.name, points, reasons(c, limits)) for points, c in scored]


def run_length(busy: set[int], position: int) -> int:
    """The length of the run of consecutive positions through `position` once it is busy
    too (positions are the indexes of the day's active periods in order)."""
    taken = busy | {position}
    start = position
    while start - 1 in taken:
        start -= 1
    end = position
    while end + 1 in taken:
        end += 1
    return end - start + 1
