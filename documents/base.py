"""What every stored document shares: the tenant query set, the shard key, UTC timestamps."""

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

    @property
    def _query(self):
        """The filter MongoEngine builds, with `_id` first when it names one: the embedded
        server uses the `_id` index only for a filter whose first key is `_id` (at 5,000
        documents of a school, 0.5 ms against 100 ms); MongoDB does not mind the order."""
        query = super()._query
        if "_id" in query and next(iter(query)) != "_id":
            query = {"_id": query["_id"], **{k: v for k, v in query.items() if k != "_id"}}
        return query


# The shard key of every school-owned collection on a sharded cluster (`rota shard`). Every
# index of a school-owned document starts with it, and every query and write filters on it.
SHARD_KEY = "school_id"

# The collections of documents that belong to no single school, and why: they stay unsharded
# (on the database's primary shard) and may be read without a school. tests/test_sharding.py
# checks that every document is either here or `SchoolOwned`.
UNSHARDED = {
    "companies": "above schools: a few documents, read by _id",
    "schools": "the tenants themselves, one per school, read by _id or code on every request",
    "users": "login finds a person by email across schools (emails are unique everywhere) "
             "and company admins have no school",
    "revoked_tokens": "checked by token id before any school is known; expire by TTL",
    "login_failures": "counted per email and address before any school is known; expire by "
                      "TTL",
    "service_accounts": "a company's integrations: company-wide ones have no school; a few "
                        "per school, listed by company admins",
    "api_keys": "found by the hash of the presented key before any school is known (and a "
                "company-wide account's keys have none)",
    "api_key_windows": "a key's request count per minute, found by _id before any school is "
                       "known; expire by TTL",
    "calendar_feeds": "found by the hash of the token in a feed URL, which calendar apps "
                      "send without a bearer, before any school is known; one per person",
    "calendar_feed_windows": "a feed's request count per minute, found by _id; expire by TTL",
    "notifications": "read by their recipient, and a company admin's span schools",
    "idempotency_keys": "a caller's keys, read by _id (caller and key) before any school is "
                        "known, also on routes without one; short-lived (TTL, 24 h)",
}


class SchoolOwned(Document):
    """A document that belongs to exactly one school."""

    # `shard_key` makes MongoEngine put `school_id` in the filter of every save, update,
    # reload and delete of a document: without it a cluster sends them to every shard.
    meta = {"abstract": True, "queryset_class": SchoolQuerySet, "auto_create_index": False,
            "shard_key": (SHARD_KEY,)}

    school_id = ObjectIdField(required=True)
    created_at = DateTimeField(default=utcnow)
