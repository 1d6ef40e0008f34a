"""Short exclusive leases: the one write primitive that is atomic on every backend we run on."""

from __future__ import annotations

from mongoengine import StringField

from documents.base import SchoolOwned


class Lease(SchoolOwned):
    """Held while one request changes one thing (`key`). The unique index makes taking it
    atomic on MongoDB, FerretDB and mongomock alike; `created_at` lets a crashed holder's lease
    be broken."""

    meta = {"collection": "leases",
            "indexes": [{"fields": ["school_id", "key"], "unique": True}]}

    key = StringField(required=True)
