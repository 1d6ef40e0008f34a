"""Idempotency keys: a POST retried with the same `Idempotency-Key` gets the first answer
instead of running twice.

A key belongs to its caller (a user id): two callers never see each other's keys, and one
caller's key means one request whatever the route or school. Claiming a key is one unique
insert, so of two parallel requests with the same key exactly one runs; the other is told the
key is in use (409) and retries. Only answers that would come out the same again are kept
(2xx and 4xx but 429): a 5xx or a throttle releases the key, so a retry runs anew.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from mongoengine.errors import NotUniqueError

from documents.base import utcnow
from documents.idempotency import IdempotencyRecord
from service.errors import Conflict, ValidationFailed

KEEP_FOR = timedelta(hours=24)
# A claim outlives any request (gunicorn's timeout is 60 s); a worker that died holding one
# frees the key when it expires.
CLAIM_FOR = timedelta(minutes=2)
THROTTLED = 429


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str | None
    location: str | None


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What "the same request" means: method, path with query, and the body (JSON compared
    as data, so key order and spacing do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def storable(status: int) -> bool:
    return 200 <= status < 500 and status != THROTTLED


class IdempotencyKeys:
    """One caller's keys."""

    def __init__(self, caller: str):
        self.caller = caller

    def _id(self, key: str) -> str:
        return f"{self.caller}/{key}"

    def claim(self, key: str, fingerprint: str) -> StoredResponse | None:
        """None when this request now holds the key and runs; the stored response when the
        same request already ran. 422 `idempotency_key_reused` for another request under the
        key, 409 `idempotency_key_in_use` while the first one still runs."""
        for _ in range(2):  # a second time when the record expired or went meanwhile
            now = utcnow()
            if self._insert(key, fingerprint, now):
                return None
            record = IdempotencyRecord.objects(id=self._id(key)).first()
            if record is None:
                continue
            if record.expires_at <= now:
                # The TTL monitor runs about once a minute: an expired record is not yet gone.
                if self._take_over(record, fingerprint, now):
                    return None
                continue
            return self._answer(record, fingerprint)
        raise self._in_use()

    def _insert(self, key: str, fingerprint: str, now) -> bool:
        try:
            IdempotencyRecord(id=self._id(key), fingerprint=fingerprint, state="in_progress",
                              created_at=now, expires_at=now + CLAIM_FOR).save(force_insert=True)
            return True
        except NotUniqueError:
            return False

    def _take_over(self, record: IdempotencyRecord, fingerprint: str, now) -> bool:
        return bool(IdempotencyRecord.objects(id=record.id, expires_at=record.expires_at)
                    .update_one(set__fingerprint=fingerprint, set__state="in_progress",
                                unset__status=True, unset__body=True, unset__content_type=True,
                                unset__location=True, set__created_at=now,
                                set__expires_at=now + CLAIM_FOR))

    def _answer(self, record: IdempotencyRecord, fingerprint: str) -> StoredResponse:
        if record.fingerprint != fingerprint:
            raise ValidationFailed(
                "This Idempotency-Key was used for another request (other method, path or "
                "body) within 24 hours; use a new key for a new request.",
                code="idempotency_key_reused")
        if record.state != "done":
            raise self._in_use()
        return StoredResponse(record.status, record.body, record.content_type, record.location)

    @staticmethod
    def _in_use() -> Conflict:
        return Conflict("A request with this Idempotency-Key is still running; retry in a "
                        "moment to get its response.", code="idempotency_key_in_use")

    def complete(self, key: str, fingerprint: str, response: StoredResponse) -> None:
        """Keep the response for 24 hours, or free the key when a retry should run anew."""
        claimed = IdempotencyRecord.objects(id=self._id(key), fingerprint=fingerprint,
                                            state="in_progress")
        if not storable(response.status):
            claimed.delete()
            return
        claimed.update_one(set__state="done", set__status=response.status,
                           set__body=response.body, set__content_type=response.content_type,
                           set__location=response.location,
                           set__expires_at=utcnow() + KEEP_FOR)
