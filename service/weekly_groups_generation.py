"""The group generation algorithm, pure: students by ability level, youngest first, in chunks
of the maximum group size, named "<level> Group <n>"."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

UNKNOWN_LEVEL = "Unknown"


def age_on(birth_date: datetime | date | None, today: date) -> int | None:
    if birth_date is None:
        return None
    born = birth_date.date() if isinstance(birth_date, datetime) else birth_date
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def generation_order(students: list[dict], today: date) -> list[dict]:
    """Youngest first; students without a birth date last; ties by name."""
    def key(student):
        age = age_on(student.get("birth_date"), today)
        return (age is None, age or 0, student["name"], str(student["_id"]))
    return sorted(students, key=key)


def generation_plan(students: list[dict], max_group_size: int, today: date) -> dict:
    """"<level> Group <n>" -> its students, levels in alphabetical order."""
    by_level: dict[str, list[dict]] = defaultdict(list)
    for student in students:
        by_level[level_of(student)].append(student)
    plan = {}
    for level in sorted(by_level):
        ordered = generation_order(by_level[level], today)
        for index in range(0, len(ordered), max_group_size):
            plan[f"{level} Group {index // max_group_size + 1}"] = \
                ordered[index:index + max_group_size]
    return plan


def level_of(student: dict) -> str:
    return student.get("ability_level") or UNKNOWN_LEVEL
