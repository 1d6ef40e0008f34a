"""Changing an aggregate: one document that holds an invariant, changed by one conditional update.

Two ways, both MongoDB's own atomicity, the same on a replica set, a sharded cluster (the
filter carries `school_id`, the shard key) and the embedded server:

- a filter that states the precondition (`{"locked": False}`): `update_where` answers the
  updated document, or None when the precondition failed;
- compare-and-set on `version`: `change` reads the document, lets a pure `plan` function
  decide the update from what it read (raising a `DomainError` when a rule forbids it), and
  applies it with a filter on the version it read. Losing a race to another writer re-reads
  and plans again, a few times; only then does it answer 409 `concurrent_update`.

Both honour the request's `If-Match` about the document they change (service/preconditions.py):
`change` answers 412 when a read finds the document at another version (a lost race too),
`update_where` adds the expected version to its filter.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo import ReturnDocument

from service import preconditions
from service.errors import Conflict, NotFound

ATTEMPTS = 8

# plan(document) -> the update document (`$set`, `$push`, ...), or None for "nothing to do".
Plan = Callable[[dict], dict | None]


def update_where(collection, school_id, filter: dict, update: dict,
                 projection: dict | None = None) -> dict | None:
    """Apply `update` to the one document of this school matching `filter`; answer it as it
    is after the update, or None when no document matched (the precondition failed)."""
    expected = preconditions.guard(filter["_id"]) if "_id" in filter else {}
    after = collection.find_one_and_update(
        {**by_id(school_id, filter), **expected}, _with_version_bump(update),
        projection=projection, return_document=ReturnDocument.AFTER)
    if after is not None:
        if expected:
            preconditions.written(filter["_id"])
    elif expected:
        # One read: a 412 when the document is at another version than If-Match said; the
        # caller's own 404/409 otherwise.
        current = collection.find_one(by_id(school_id, filter), {"version": 1})
        if current is not None:
            preconditions.check(filter["_id"], current.get("version"))
    return after


def update_if(collection, school_id, filter: dict, update: dict) -> bool:
    """`update_where` for a caller that needs only whether it matched: one `update_one`, no
    document sent back (the embedded server's findAndModify costs several times as much)."""
    expected = preconditions.guard(filter["_id"]) if "_id" in filter else {}
    matched = collection.update_one({**by_id(school_id, filter), **expected},
                                    _with_version_bump(update)).matched_count > 0
    if matched:
        if expected:
            preconditions.written(filter["_id"])
    elif expected:
        current = collection.find_one(by_id(school_id, filter), {"version": 1})
        if current is not None:
            preconditions.check(filter["_id"], current.get("version"))
    return matched


def change(collection, school_id, filter: dict, plan: Plan, *, what: str = "object",
           attempts: int = ATTEMPTS) -> tuple[dict, dict]:
    """Compare-and-set on `version`. Answers (before, after); `after is before` when the plan
    had nothing to do. 404 when no document of this school matches `filter`."""
    query = by_id(school_id, filter)
    for _ in range(attempts):
        before = collection.find_one(query)
        if before is None:
            raise NotFound(f"No {what} matches.")
        preconditions.check(before["_id"], before.get("version"))  # If-Match: 412
        update = plan(before)
        if not update:
            preconditions.written(before["_id"])
            return before, before
        version = before.get("version", 0)
        guard = {"_id": before["_id"], "school_id": school_id,
                 "version": version if version else {"$in": [0, None]}}
        after = collection.find_one_and_update(guard, _with_version_bump(update),
                                               return_document=ReturnDocument.AFTER)
        if after is not None:
            preconditions.written(before["_id"])
            return before, after
    raise Conflict(f"The {what} kept changing while this request ran; try again.",
                   code="concurrent_update")


def by_id(school_id, filter: dict) -> dict:
    """The filter of this school's document, `_id` first when it names one: the embedded
    server looks a document up by `_id` only when `_id` is the filter's first key, and scans
    the collection otherwise (MongoDB does not mind the order)."""
    if "_id" in filter:
        return {"_id": filter["_id"], "school_id": school_id, **filter}
    return {"school_id": school_id, **filter}


def _with_version_bump(update: dict) -> dict:
    bumped = dict(update)
    bumped["$inc"] = {**update.get("$inc", {}), "version": 1}
    return bumped
