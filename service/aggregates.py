"""Changing an aggregate: one document that holds an invariant, changed by one conditional update.

Two ways, both MongoDB's own atomicity, the same on a replica set, a sharded cluster (the
filter carries `school_id`, the shard key) and the embedded server:

- a filter that states the precondition (`{"locked": False}`): `update_where` answers the
  updated document, or None when the precondition failed;
- compare-and-set on `version`: `change` reads the document, lets a pure `plan` function
  decide the update from what it read (raising a `DomainError` when a rule forbids it), and
  applies it with a filter on the version it read. Losing a race to another writer re-reads
  and plans again, a few times; only then does it answer 409 `concurrent_update`.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo import ReturnDocument

from service.errors import Conflict, NotFound

ATTEMPTS = 8

# plan(document) -> the update document (`$set`, `$push`, ...), or None for "nothing to do".
Plan = Callable[[dict], dict | None]


def update_where(collection, school_id, filter: dict, update: dict,
                 projection: dict | None = None) -> dict | None:
    """Apply `update` to the one document of this school matching `filter`; answer it as it
    is after the update, or None when no document matched (the precondition failed)."""
    return collection.find_one_and_update(
        {"school_id": school_id, **filter}, _with_version_bump(update),
        projection=projection, return_document=ReturnDocument.AFTER)


def change(collection, school_id, filter: dict, plan: Plan, *, what: str = "object",
           attempts: int = ATTEMPTS) -> tuple[dict, dict]:
    """Compare-and-set on `version`. Answers (before, after); `after is before` when the plan
    had nothing to do. 404 when no document of this school matches `filter`."""
    query = {"school_id": school_id, **filter}
    for _ in range(attempts):
        before = collection.find_one(query)
        if before is None:
            raise NotFound(f"No {what} matches.")
        update = plan(before)
        if not update:
            return before, before
        version = before.get("version", 0)
        guard = {"_id": before["_id"], "school_id": school_id,
                 "version": version if version else {"$in": [0, None]}}
        after = collection.find_one_and_update(guard, _with_version_bump(update),
                                               return_document=ReturnDocument.AFTER)
        if after is not None:
            return before, after
    raise Conflict(f"The {what} kept changing while this request ran; try again.",
                   code="concurrent_update")


def _with_version_bump(update: dict) -> dict:
    bumped = dict(update)
    bumped["$inc"] = {**update.get("$inc", {}), "version": 1}
    return bumped
