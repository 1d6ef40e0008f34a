"""The balancing rules of tracks, as pure functions over loads and over a track document as
stored (property-tested in tests/test_tracks_balancing.py).

Every instructor has a `weight` (default 1) and may have a cap, `max_students`; pinned
students never move, so an instructor's pinned students are a floor under their load. The
share of an instructor is the real-valued load proportional to weight between those bounds
(`weighted_shares`: water-filling); targets are the shares rounded down or up so that they
add up to the students of the track (`weighted_targets`). Balancing moves only the students
above their instructor's target, which is the fewest moves reaching the targets.
"""

from __future__ import annotations

import heapq
from fractions import Fraction
from math import floor
from statistics import mean, pstdev

from service.errors import Conflict

IMBALANCE_RATIO = 1.2
# A load this far above or below its weighted target is flagged in the loads view.
FLAG_RATIO = Fraction(1, 5)
# Up to this many moved enrolments are updated field by field, more by rewriting the list.
POSITIONAL_LIMIT = 32


def track_full(students: int, capacity: int, requested: int = 0) -> Conflict:
    return Conflict(f"The track's instructors take at most {capacity} students; it has "
                    f"{students} and {requested} more were asked for.", code="track_full",
                    details={"students": students, "requested": requested,
                             "capacity": capacity})


def as_fraction(weight) -> Fraction:
    return Fraction(str(weight)) if isinstance(weight, float) else Fraction(weight)


def capacity(caps: dict, floors: dict | None = None) -> int | None:
    """How many students the instructors take together; None when one of them has no cap.
    Pinned students above a cap count: they stay where they are."""
    floors = floors or {}
    if any(cap is None for cap in caps.values()):
        return None
    return sum(max(cap, floors.get(i, 0)) for i, cap in caps.items())


def weighted_shares(total: int, weights: dict, caps: dict | None = None,
                    floors: dict | None = None) -> dict | None:
    """Real-valued loads adding up to `total`: `min(cap, max(floor, level * weight))` for the
    one `level` where they do (water-filling). None when the caps cannot hold `total`."""
    caps, floors = caps or {}, floors or {}
    weights = {i: as_fraction(w) for i, w in weights.items()}
    low = {i: Fraction(floors.get(i, 0)) for i in weights}
    high = {i: None if caps.get(i) is None else Fraction(max(caps[i], floors.get(i, 0)))
            for i in weights}

    def share(i, level):
        value = max(low[i], level * weights[i])
        return value if high[i] is None else min(high[i], value)

    def filled(level):
        return sum(share(i, level) for i in weights)

    points = sorted({Fraction(0)} | {low[i] / weights[i] for i in weights}
                    | {high[i] / weights[i] for i in weights if high[i] is not None})
    if filled(points[0]) > total:
        return None  # more pinned students than the track has: not a state balancing meets
    previous = points[0]
    for point in points:
        if filled(point) >= total:
            rise = filled(point) - filled(previous)
            level = previous if rise == 0 else (
                previous + (total - filled(previous)) * (point - previous) / rise)
            return {i: share(i, level) for i in weights}
        previous = point
    open_weight = sum(w for i, w in weights.items() if high[i] is None)
    if not open_weight:
        return None
    level = previous + (total - filled(previous)) / open_weight
    return {i: share(i, level) for i in weights}


def weighted_targets(loads: dict, weights: dict | None = None, caps: dict | None = None,
                     floors: dict | None = None, total: int | None = None) -> dict | None:
    """Whole loads within one of the weighted shares, adding up to `total` (default: the
    students in `loads`). Of the shares with a fraction, those rounded up are first the ones
    whose load is already above the rounded-down share (each saves a move), then the larger
    fractions, then the smaller ids. None when the caps cannot hold them."""
    total = sum(loads.values()) if total is None else total
    if not loads:
        return {} if total == 0 else None
    weights = weights or dict.fromkeys(loads, 1)
    shares = weighted_shares(total, weights, caps, floors)
    if shares is None:
        return None
    targets = {i: floor(share) for i, share in shares.items()}
    extra = total - sum(targets.values())
    rounded_up = sorted((i for i in shares if shares[i] != targets[i]),
                        key=lambda i: (loads.get(i, 0) <= targets[i], targets[i] - shares[i], i))
    for i in rounded_up[:extra]:
        targets[i] += 1
    return targets


def balanced_targets(loads: dict, weights: dict | None = None, caps: dict | None = None,
                     pinned: dict | None = None) -> dict:
    """The targets balancing reaches (pinned students stay); 409 `track_full` when the caps
    cannot hold the track's students."""
    targets = weighted_targets(loads, weights, caps, pinned)
    if targets is None:
        raise track_full(sum(loads.values()), capacity(caps or {}, pinned) or 0)
    return targets


def balance_moves(loads: dict, weights: dict | None = None, caps: dict | None = None,
                  pinned: dict | None = None) -> list[tuple]:
    """`(from, to, how_many)` moves reaching `balanced_targets`: only the students above
    their target move, so the number moved is the minimum possible."""
    targets = balanced_targets(loads, weights, caps, pinned)
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


def least_loaded_assignment(loads: dict, count: int, weights: dict | None = None,
                            caps: dict | None = None) -> list:
    """The instructor for each of `count` newcomers, in order, nobody already there moving:
    the loads end at the weighted targets of the new total above the current loads, and each
    newcomer goes to the least loaded by weight of those still below their target (ties: the
    smaller instructor id). 409 `track_full` when the caps cannot take them."""
    weights = {i: as_fraction(w) for i, w in (weights or dict.fromkeys(loads, 1)).items()}
    total = sum(loads.values())
    targets = weighted_targets(loads, weights, caps, loads, total + count)
    if targets is None:
        raise track_full(total, capacity(caps or {}, loads) or 0, count)
    current = dict(loads)
    heap = [(current[i] / weights[i], i) for i in loads if current[i] < targets[i]]
    heapq.heapify(heap)
    chosen = []
    for _ in range(count):
        _, instructor = heapq.heappop(heap)
        chosen.append(instructor)
        current[instructor] += 1
        if current[instructor] < targets[instructor]:
            heapq.heappush(heap, (current[instructor] / weights[instructor], instructor))
    return chosen


def load_flag(students: int, target: int) -> str | None:
    """"over" or "under" when the load is more than 20% above or below its target."""
    if students > target * (1 + FLAG_RATIO):
        return "over"
    if students < target * (1 - FLAG_RATIO):
        return "under"
    return None


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


def pinned_of(track: dict) -> dict:
    """Pinned students per instructor of the track."""
    pinned = {instructor["user_id"]: 0 for instructor in track.get("instructors") or []}
    for enrolment in track.get("enrolments") or []:
        if enrolment.get("pinned") and enrolment["instructor_id"] in pinned:
            pinned[enrolment["instructor_id"]] += 1
    return pinned


def weights_of(track: dict) -> dict:
    return {i["user_id"]: i.get("weight") or 1 for i in track.get("instructors") or []}


def caps_of(track: dict) -> dict:
    return {i["user_id"]: i.get("max_students") for i in track.get("instructors") or []}


def instructor_index(track: dict, user_id) -> int | None:
    return next((n for n, instructor in enumerate(track.get("instructors") or [])
                 if instructor["user_id"] == user_id), None)


def enrolment_index(track: dict, student_id) -> int | None:
    return next((n for n, enrolment in enumerate(track.get("enrolments") or [])
                 if enrolment["student_id"] == student_id), None)


def newcomer_instructors(track: dict, count: int) -> list:
    """The instructor of each of `count` students joining the track (`least_loaded_assignment`
    over its instructors' loads, weights and caps)."""
    return least_loaded_assignment(loads_of(track), count, weights_of(track), caps_of(track))


def balancing_changes(track: dict) -> list[tuple[int, object]]:
    """`(enrolment index, new instructor)` reaching the weighted targets with the fewest
    moves; pinned students never move; of each busy instructor the newest unpinned
    enrolments move (the list is in enrolment order)."""
    loads = loads_of(track)
    newest_first: dict = {instructor: [] for instructor in loads}
    enrolments = track.get("enrolments") or []
    for index in range(len(enrolments) - 1, -1, -1):
        if not enrolments[index].get("pinned"):
            newest_first.setdefault(enrolments[index]["instructor_id"], []).append(index)
    changes = []
    for source, target, amount in balance_moves(loads, weights_of(track), caps_of(track),
                                                pinned_of(track)):
        chosen, newest_first[source] = newest_first[source][:amount], newest_first[source][amount:]
        changes += [(index, target) for index in chosen]
    return changes


def orphan_changes(track: dict, leaving, pinned_to=None) -> list[tuple[int, object]]:
    """`(enrolment index, new instructor)` for the students of `leaving`: pinned ones to
    `pinned_to` when given, the others (all, without `pinned_to`) to the least loaded by
    weight of the instructors who stay, in enrolment order."""
    stay = {**track, "instructors": [i for i in track.get("instructors") or []
                                     if i["user_id"] != leaving]}
    enrolments = track.get("enrolments") or []
    orphans = [index for index, enrolment in enumerate(enrolments)
               if enrolment["instructor_id"] == leaving]
    kept = [index for index in orphans if pinned_to is not None and enrolments[index].get("pinned")]
    rehomed = [index for index in orphans if index not in set(kept)]
    if not stay["instructors"]:
        return []
    to_target = [(index, pinned_to) for index in kept]
    placed = newcomer_instructors(with_changes(stay, to_target), len(rehomed))
    return to_target + list(zip(rehomed, placed, strict=True))


def with_changes(track: dict, changes: list[tuple[int, object]],
                 pinned: bool | None = None) -> dict:
    """The track as it would be after `changes` (for planning further moves on top)."""
    enrolments = list(track.get("enrolments") or [])
    for index, target in changes:
        enrolments[index] = {**enrolments[index], "instructor_id": target}
        if pinned is not None:
            enrolments[index]["pinned"] = pinned
    return {**track, "enrolments": enrolments}


def merged(*change_lists) -> list[tuple[int, object]]:
    """Several lists of changes as one, the later change of an enrolment winning."""
    final: dict = {}
    for changes in change_lists:
        final.update(dict(changes))
    return sorted(final.items())


def moved_update(track: dict, changes: list[tuple[int, object]], now, by,
                 pinned: bool | None = None) -> dict:
    """The `$set` moving enrolments, assigned `by` someone at `now` (by position in the list
    as read: safe, as the update applies only to the version of the track it was planned
    from); `pinned` sets their pin too. A few moves set their fields by position; many
    rewrite the whole list, which servers apply in one pass rather than path by path
    (SecantusDB takes seconds for a thousand paths)."""
    def moved(target) -> dict:
        fields = {"instructor_id": target, "last_reassigned_at": now, "assigned_by": by}
        return fields if pinned is None else {**fields, "pinned": pinned}

    if len(changes) <= POSITIONAL_LIMIT:
        return {f"enrolments.{index}.{name}": value for index, target in changes
                for name, value in moved(target).items()}
    enrolments = list(track["enrolments"])
    for index, target in changes:
        enrolments[index] = {**enrolments[index], **moved(target)}
    return {"enrolments": enrolments}
