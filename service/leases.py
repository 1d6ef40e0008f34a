"""Exclusive leases for read-check-write sequences.

Why: FerretDB v1.24 (SQLite) runs `update_one`/`find_one_and_update` as read, modify, write
back without isolation, so two requests can both "win" a filter such as `status: "pending"`
or `count < max`, and concurrent `$inc`s get lost (checked here with 16 threads: up to 15
winners of a bounded `$inc`). Unique-index inserts are atomic there. So every invariant that
needs a check and a write goes through `exclusive(...)`, which holds a unique lease document
for the few milliseconds of the write; the conditional updates inside stay as a second line
of defence and make the code correct on MongoDB by themselves.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from contextlib import ExitStack, contextmanager
from datetime import timedelta

from mongoengine.errors import NotUniqueError

from documents.base import utcnow
from documents.leases import Lease
from service.errors import Conflict

WAIT_SECONDS = 10
# Longer than any request may run (gunicorn kills a worker after 60 s): only a crashed
# holder leaves a lease this old.
STALE_AFTER = timedelta(seconds=90)


@contextmanager
def exclusive(school_id, key: str, wait: float = WAIT_SECONDS):
    """Hold the lease on `key` within the school, waiting up to `wait` seconds for a current
    holder; 409 `busy` when it is not released in time."""
    lease = _acquire(school_id, key, wait)
    try:
        yield
    finally:
        Lease.objects.for_school(school_id).filter(id=lease.id).delete()


@contextmanager
def exclusive_all(school_id, keys: Iterable[str], wait: float = WAIT_SECONDS):
    """Hold several leases, taken in sorted order so two requests never wait on each other."""
    with ExitStack() as stack:
        for key in sorted(set(keys)):
            stack.enter_context(exclusive(school_id, key, wait))
        yield


def _acquire(school_id, key: str, wait: float) -> Lease:
    deadline = time.monotonic() + wait
    attempt = 0
    while True:
        try:
            return Lease(school_id=school_id, key=key).save(force_insert=True)
        except NotUniqueError:
            _break_stale(school_id, key)
        if time.monotonic() > deadline:
            raise Conflict("Someone else is changing this right now; try again.", code="busy",
                           details={"resource": key})
        attempt += 1
        time.sleep(random.uniform(0.002, 0.01) * min(attempt, 10))


def _break_stale(school_id, key: str) -> None:
    leases = Lease.objects.for_school(school_id)
    stale = leases.filter(key=key, created_at__lt=utcnow() - STALE_AFTER).first()
    if stale is not None:
        leases.filter(id=stale.id).delete()
