"""The audit trail and user notifications."""

from __future__ import annotations

from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    ListField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned, utcnow


class AuditEvent(SchoolOwned):
    meta = {"collection": "audit_events",
            "indexes": [["school_id", "-created_at"],
                        ["school_id", "entity_type", "entity_id", "-created_at"],
                        ["school_id", "entity_ids"]]}

    # Stored as null for company-level events, so every event carries the shard key: they
    # all live in the null chunk of a sharded cluster.
    school_id = ObjectIdField(null=True)
    company_id = ObjectIdField()
    actor_id = ObjectIdField()
    actor_role = StringField(required=True)
    # A service account's name (its calls have actor_role "service_account"); None for people.
    actor_name = StringField()
    action = StringField(required=True)
    entity_type = StringField(required=True)
    entity_id = StringField()
    # A bulk write (an import batch) records one event naming every document it created.
    entity_ids = ListField(StringField())
    before = DictField()
    after = DictField()


class Notification(Document):
    """Belongs to its recipient, who may be a company admin spanning schools."""

    meta = {"collection": "notifications", "auto_create_index": False,
            "indexes": [["user_id", "-created_at"], ["user_id", "read_at"]]}

    user_id = ObjectIdField(required=True)
    school_id = ObjectIdField()
    kind = StringField(required=True)
    message = StringField(required=True)
    data = DictField()
    read_at = DateTimeField()
    created_at = DateTimeField(default=utcnow)
