"""What every stored document shares: the tenant query set and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

from mongoengine import DateTimeField, Document, ObjectIdField, QuerySet


def utcnow() -> datetime:
    """Naive UTC, as MongoDB stores it (millisecond precision)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class SchoolQuerySet(QuerySet):
    def for_school(self, school_id):
        """Every manager query on school-owned data starts here: the tenant wall."""
        return self.filter(school_id=school_id)


class SchoolOwned(Document):
    """A document that belongs to exactly one school."""

    meta = {"abstract": True, "queryset_class": SchoolQuerySet, "auto_create_index": False}

    school_id = ObjectIdField(required=True)
    created_at = DateTimeField(default=utcnow)
