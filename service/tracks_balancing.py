"""The balancing rules of tracks, as pure functions over loads and over a track document as
stored (property-tested in tests/test_tracks_balancing.py)."""

from __future__ import annotations

import heapq
from statistics import mean, pstdev

IMBALANCE_RATIO = 1.2
# Up to this many moved enrolments are updated field by field, more by rewriting the list.
POSITIONAL_LIMIT = 32


def least_loaded_assignment(loads: dict, count: int) -> list:
    """The instructor for each of `count` newcomers, in order: always the least loaded at that
    moment, ties broken by the smaller instructor id so the result is deterministic."""
    heap = [(load, instructor) for instructor, load in loads.items()]
    heapq.heapify(heap)
    chosen = []
    for _ in range(count):
        load, instructor = heapq.heappop(heap)
        chosen.append(instructor)
        heapq.heappush(heap, (load + 1, instructor))
    return chosen


def balanced_targets(loads: dict) -> dict:
    """Final loads with a spread of at most one. The `total % n` instructors that keep one
    extra student are the most loaded ones already, which is what makes the moves minimal."""
    if not loads:
        return {}
    base, extra = divmod(sum(loads.values()), len(loads))
    busiest_first = sorted(loads, key=lambda instructor: (-loads[instructor], instructor))
    return {instructor: base + (1 if rank < extra else 0)
            for rank, instructor in enumerate(busiest_first)}


def balance_moves(loads: dict) -> list[tuple]:
    """`(from, to, how_many)` moves reaching `balanced_targets`: only surplus students move,
    so the number moved is the minimum possible."""
    targets = balanced_targets(loads)
    donors = [[i, loads[i] - targets[i]] for i in sorted(loads) if loads[i] > targets[i]]
    receivers = [[i, targets[i] - loads[i]] for i in sorted(loads) if loads[i] < targets[i]]
    moves = []
    while donors and receivers:
        donor, receiver = donors[0], receivers[0]
        amount = min(donor[1], receiver[1])
        moves.append((donor[0], receiver[0], amount))
        donor[1] -= amount
        receiver[1] -= amount
        if donor[1] == 0:
            donors.pop(0)
        if receiver[1] == 0:
            receivers.pop(0)
    return moves


def load_stats(counts: list[int]) -> dict:
    """Spread (max - min), population standard deviation and mean of instructor loads."""
    if not counts:
        return {"spread": 0, "stddev": 0.0, "mean": 0.0}
    return {"spread": max(counts) - min(counts), "stddev": round(pstdev(counts), 4),
            "mean": round(mean(counts), 4)}


def is_imbalanced(counts: list[int]) -> bool:
    """The busiest instructor has more than 20% above the mean load."""
    return bool(counts) and mean(counts) > 0 and max(counts) > IMBALANCE_RATIO * mean(counts)


# ---- over a track document as stored (raw dicts) --------------------------------------------

def loads_of(track: dict) -> dict:
    """Students per instructor of the track, 0 for those without any: counted from its
    enrolments, which is why loads cannot drift from them."""
    loads = {instructor["user_id"]: 0 for instructor in track.get("instructors") or []}
    for enrolment in track.get("enrolments") or []:
        if enrolment["instructor_id"] in loads:
            loads[enrolment["instructor_id"]] += 1
    return loads


def instructor_index(track: dict, user_id) -> int | None:
    return next((n for n, instructor in enumerate(track.get("instructors") or [])
                 if instructor["user_id"] == user_id), None)


def enrolment_index(track: dict, student_id) -> int | None:
    return next((n for n, enrolment in enumerate(track.get("enrolments") or [])
                 if enrolment["student_id"] == student_id), None)


def balancing_changes(track: dict) -> list[tuple[int, object]]:
    """`(enrolment index, new instructor)` reaching a spread of at most one with the fewest
    moves; of each busy instructor the newest enrolments move (the list is in enrolment
    order)."""
    newest_first: dict = {instructor: [] for instructor in loads_of(track)}
    enrolments = track.get("enrolments") or []
    for index in range(len(enrolments) - 1, -1, -1):
        newest_first.setdefault(enrolments[index]["instructor_id"], []).append(index)
    changes = []
    for source, target, amount in balance_moves(loads_of(track)):
        chosen, newest_first[source] = newest_first[source][:amount], newest_first[source][amount:]
        changes += [(index, target) for index in chosen]
    return changes


def orphan_changes(track: dict, leaving) -> list[tuple[int, object]]:
    """`(enrolment index, new instructor)` for the students of `leaving`: each to the least
    loaded of the instructors who stay, in enrolment order."""
    stay = {i: n for i, n in loads_of(track).items() if i != leaving}
    orphans = [index for index, enrolment in enumerate(track.get("enrolments") or [])
               if enrolment["instructor_id"] == leaving]
    if not orphans or not stay:
        return []
    return list(zip(orphans, least_loaded_assignment(stay, len(orphans)), strict=True))


def moved_update(track: dict, changes: list[tuple[int, object]], now, by) -> dict:
    """The `$set` moving enrolments, assigned `by` someone at `now` (by position in the list
    as read: safe, as the update applies only to the version of the track it was planned
    from). A few moves set their fields by position; many rewrite the whole list, which
    servers apply in one pass rather than path by path (SecantusDB takes seconds for a
    thousand paths)."""
    def moved(target) -> dict:
        return {"instructor_id": target, "last_reassigned_at": now, "assigned_by": by}

    if len(changes) <= POSITIONAL_LIMIT:
        return {f"enrolments.{index}.{name}": value for index, target in changes
                for name, value in moved(target).items()}
    enrolments = list(track["enrolments"])
    for index, target in changes:
        enrolments[index] = {**enrolments[index], **moved(target)}
    return {"enrolments": enrolments}
