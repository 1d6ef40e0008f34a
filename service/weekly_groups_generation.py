"""The group generation algorithm, pure and deterministic: students by ability level, then
(optionally) by age band, youngest first with the exact age as the tie-break, in groups of
at most the maximum size, named "<level> Group <n>". Given pairs are kept together or
apart.

Students are placed one "unit" at a time (a student, or students that must stay together)
in the first group of their level and band that has room and holds nobody they must be kept
apart from; a new group is opened when none does. Without pairs this is exactly chunking
the ordered students by the maximum size, the weekly design's result.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from service.errors import ValidationFailed

UNKNOWN_LEVEL = "Unknown"


def age_on(birth_date: datetime | date | None, today: date) -> int | None:
    if birth_date is None:
        return None
    born = birth_date.date() if isinstance(birth_date, datetime) else birth_date
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def generation_order(students: list[dict], today: date) -> list[dict]:
    """Youngest first by exact birth date; students without a birth date last; then name."""
    def key(student):
        born = student.get("birth_date")
        exact = (date.max - (born.date() if isinstance(born, datetime) else born)).days \
            if born else 0
        return (born is None, exact, student["name"], str(student["_id"]))
    return sorted(students, key=key)


def band_of(student: dict, today: date, band_years: int | None) -> str:
    """The age band ("6-8") within a level; one band for all when bands are not asked."""
    if not band_years:
        return ""
    age = age_on(student.get("birth_date"), today)
    if age is None:
        return "no age"
    low = age // band_years * band_years
    return f"{low}-{low + band_years - 1}"


def generation_plan(students: list[dict], max_group_size: int, today: date,
                    band_years: int | None = None, together: list = (),
                    apart: list = ()) -> dict:
    """"<level> Group <n>" -> its students, levels in alphabetical order, bands youngest
    first. 422 when pairs to keep together make a unit larger than a group."""
    units_of = _units(students, together)
    apart_of: dict = defaultdict(set)
    for a, b in apart:
        apart_of[a].add(b)
        apart_of[b].add(a)
    by_level: dict[str, list[dict]] = defaultdict(list)
    for student in students:
        by_level[level_of(student)].append(student)
    plan = {}
    for level in sorted(by_level):
        groups: list[list[dict]] = []
        for band_groups in _banded(generation_order(by_level[level], today), today,
                                   band_years):
            groups += _fill(band_groups, units_of, apart_of, max_group_size)
        for index, members in enumerate(groups):
            plan[f"{level} Group {index + 1}"] = members
    return plan


def _banded(ordered: list[dict], today: date, band_years: int | None) -> list[list[dict]]:
    bands: dict[str, list[dict]] = {}
    for student in ordered:  # youngest first: bands come in age order
        bands.setdefault(band_of(student, today, band_years), []).append(student)
    return list(bands.values())


def _units(students: list[dict], together: list) -> dict:
    """student id -> the ids of everyone who must be in their group (themselves included):
    the connected pairs."""
    unit = {s["_id"]: {s["_id"]} for s in students}
    for a, b in together:
        if a in unit and b in unit and unit[a] is not unit[b]:
            merged = unit[a] | unit[b]
            for member in merged:
                unit[member] = merged
    return unit


def _fill(ordered: list[dict], units_of: dict, apart_of: dict,
          max_size: int) -> list[list[dict]]:
    position = {s["_id"]: index for index, s in enumerate(ordered)}
    groups: list[list[dict]] = []
    full = 0  # groups before this one are full: never scanned again
    for student in ordered:
        unit_ids = units_of[student["_id"]]
        if min(position[s] for s in unit_ids if s in position) != position[student["_id"]]:
            continue  # placed with the first of their unit
        unit = [ordered[i] for i in sorted(position[s] for s in unit_ids if s in position)]
        if len(unit) > max_size:
            raise ValidationFailed(
                f"{len(unit)} students must stay together, more than a group holds.",
                {"together": [f"A group holds at most {max_size}."]})
        kept_from = set().union(*(apart_of[s["_id"]] for s in unit))
        home = next((g for g in groups[full:] if len(g) + len(unit) <= max_size
                     and not (kept_from and kept_from & {s["_id"] for s in g})), None)
        if home is None:
            home = []
            groups.append(home)
        home.extend(unit)
        while full < len(groups) and len(groups[full]) >= max_size:
            full += 1
    return groups


def level_of(student: dict) -> str:
    return student.get("ability_level") or UNKNOWN_LEVEL
