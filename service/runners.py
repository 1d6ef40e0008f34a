"""Background runners: work kept in the database (import jobs, webhook deliveries), claimed
atomically by whichever runner gets there first, so a restart loses nothing.

A runner is a daemon thread in each gunicorn worker (`start_in_background`, `ROTA_RUNNERS`),
or a command (`rota import-worker`, `rota deliver-webhooks`) for deployments that keep them
apart. Each step claims one due document with one `find_one_and_update` (status and due time
in the filter, `claimed_by` and a lease in the update): only one runner wins it. A runner
that dies leaves its lease to expire; the next claim takes the document over.

Why the claim names every school (`school_id: {"$in": [...]}`) instead of using a cross-school
index on (status, due time): every index of a school-owned collection starts with `school_id`
(the shard key; tests/test_sharding.py) and every command names the schools it reads, so the
claim runs on the (school_id, status, due time) index, one seek per school in one round trip,
and a sharded cluster sends it to the shards holding those schools. The price is one read of
the school ids (the small unsharded `schools` collection) per claim; a runner that found
nothing sleeps `idle_seconds` before asking again.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

from pymongo import ReturnDocument

from documents.accounts import School
from documents.base import utcnow

log = logging.getLogger(__name__)

_INSTANCE = uuid.uuid4().hex[:6]


def runner_name() -> str:
    """Who claims: host, process and thread, read when claiming (a module imported before
    gunicorn forks its workers must not give them all one name)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}:{_INSTANCE}"


def school_ids() -> list:
    return [school["_id"] for school in School._get_collection().find({}, {"_id": 1})]


def claim(collection, statuses: tuple[str, ...], due_field: str, claimed_status: str,
          lease_seconds: float, runner_id: str, extra: dict | None = None) -> dict | None:
    """Claim the most overdue document of any school whose status is one of `statuses` and
    whose `due_field` has passed: it becomes `claimed_status`, ours, due again when the lease
    ends. None when nothing is due."""
    now = utcnow()
    update = {"$set": {"status": claimed_status, "claimed_by": runner_id,
                       due_field: now + timedelta(seconds=lease_seconds)}}
    for operator, fields in (extra or {}).items():
        update.setdefault(operator, {}).update(fields)
    return collection.find_one_and_update(
        {"school_id": {"$in": school_ids()}, "status": {"$in": list(statuses)},
         due_field: {"$lte": now}},
        update, sort=[(due_field, 1)], return_document=ReturnDocument.AFTER)


def run_until_idle(step: Callable[[], bool], limit: int | None = None) -> int:
    """Run `step` until it finds nothing to do (or `limit` steps); the number of steps that
    did something."""
    done = 0
    while (limit is None or done < limit) and step():
        done += 1
    return done


def enabled(setting: str | None) -> bool:
    """`ROTA_RUNNERS`: 1 on, 0 off, `auto` (the default) on in a gunicorn worker only, so
    tests, commands and shells never start threads they did not ask for."""
    value = (setting or os.environ.get("ROTA_RUNNERS", "auto")).strip().lower()
    if value not in ("auto", "0", "1"):
        raise ValueError(f"ROTA_RUNNERS must be auto, 0 or 1, not {value!r}.")
    if value == "auto":
        return "gunicorn.arbiter" in sys.modules
    return value == "1"


def start_in_background(name: str, step: Callable[[], bool], idle_seconds: float,
                        setting: str | None = None) -> threading.Thread | None:
    """A daemon thread running `step` forever when runners are enabled in this process."""
    if not enabled(setting):
        return None
    thread = threading.Thread(target=run_forever, args=(name, step, idle_seconds), name=name,
                              daemon=True)
    thread.start()
    return thread


def run_forever(name: str, step: Callable[[], bool], idle_seconds: float) -> None:
    """Run `step` again and again, pausing `idle_seconds` whenever it found nothing to do."""
    pause = threading.Event()
    while True:
        try:
            worked = step()
        except Exception:
            # The database away, a bug in one document: log it and keep the runner alive;
            # the claimed document's lease expires and another step takes it again.
            log.exception("%s: a step failed", name)
            worked = False
        if not worked:
            pause.wait(idle_seconds)
