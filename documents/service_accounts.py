"""Service accounts of integrations (an HR portal, a nightly job), their API keys, and the
per-key request counters of the rate limit."""

from __future__ import annotations

from mongoengine import DateTimeField, Document, IntField, ObjectIdField, StringField

from documents.base import utcnow


class ServiceAccount(Document):
    """A machine caller of one school, or (no `school_id`) of every school of its company."""

    meta = {"collection": "service_accounts", "auto_create_index": False,
            "indexes": [{"fields": ["company_id", "school_id", "name"], "unique": True}]}

    company_id = ObjectIdField(required=True)
    school_id = ObjectIdField()
    name = StringField(required=True)
    role = StringField(required=True)
    created_by = ObjectIdField()
    created_at = DateTimeField(default=utcnow)


class ApiKey(Document):
    """One key of a service account; only the SHA-256 of its secret is stored.

    It carries a copy of its account's scope (company, school, role, name: none of them
    changes after creation), so a request authenticates with one read of the key by hash."""

    meta = {"collection": "api_keys", "auto_create_index": False,
            "indexes": [{"fields": ["key_hash"], "unique": True},
                        ["account_id", "created_at"]]}

    account_id = ObjectIdField(required=True)
    account_name = StringField(required=True)
    company_id = ObjectIdField(required=True)
    school_id = ObjectIdField()
    role = StringField(required=True)
    prefix = StringField(required=True)
    key_hash = StringField(required=True)
    expires_at = DateTimeField()
    revoked_at = DateTimeField()
    last_used_at = DateTimeField()
    created_at = DateTimeField(default=utcnow)


class ApiKeyWindow(Document):
    """The requests of one key in one minute, `_id` = "<key id>:<minute>": one `$inc` upsert
    per request, so every worker and machine counts against the same limit."""

    meta = {"collection": "api_key_windows", "auto_create_index": False,
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}

    id = StringField(primary_key=True)
    count = IntField(default=0)
    expires_at = DateTimeField(required=True)
