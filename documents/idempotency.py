"""What a POST with an `Idempotency-Key` answered, kept 24 hours for its retries."""

from __future__ import annotations

from mongoengine import BinaryField, DateTimeField, Document, IntField, StringField

from documents.base import utcnow


class IdempotencyRecord(Document):
    """One caller's key. `_id` is the caller and the key, so the insert that claims a key is
    atomic on every backend; `state` is `in_progress` until the response is stored (`done`).
    The TTL index removes a record at `expires_at` (24 h after its response; a few minutes
    after a claim whose worker died before answering). Not school-owned: see documents/base.py
    UNSHARDED."""

    meta = {"collection": "idempotency_keys", "auto_create_index": False,
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}

    id = StringField(primary_key=True)
    fingerprint = StringField(required=True)
    state = StringField(required=True, choices=("in_progress", "done"))
    status = IntField()
    body = BinaryField()
    content_type = StringField()
    location = StringField()
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(required=True)
