"""Secret calendar feed URLs (`GET /api/v1/calendar/{token}.ics`) and their request counters.

Collections (field names as stored)
-----------------------------------
calendar_feeds         one per person (unique user_id): the SHA-256 of the token in the feed's
                       URL (unique: a request finds its feed in one indexed read), the `nonce`
                       the token is derived from (service/calendar_feeds.py), the person's
                       school. Unsharded (documents.base.UNSHARDED): a calendar app sends
                       only the token, so the feed is found before any school is known.
calendar_feed_windows  the requests of one feed in one minute, `_id` = "<feed id>:<minute>":
                       one `$inc` upsert per request, shared by every worker; expire by TTL.
"""

from __future__ import annotations

from mongoengine import DateTimeField, Document, IntField, ObjectIdField, StringField

from documents.base import utcnow


class CalendarFeed(Document):
    meta = {"collection": "calendar_feeds", "auto_create_index": False,
            "indexes": [{"fields": ["token_hash"], "unique": True},
                        {"fields": ["user_id"], "unique": True}]}

    user_id = ObjectIdField(required=True)
    school_id = ObjectIdField(required=True)
    nonce = StringField(required=True)
    token_hash = StringField(required=True)
    created_at = DateTimeField(default=utcnow)
    rotated_at = DateTimeField()


class CalendarFeedWindow(Document):
    meta = {"collection": "calendar_feed_windows", "auto_create_index": False,
            "indexes": [{"fields": ["expires_at"], "expireAfterSeconds": 0}]}

    id = StringField(primary_key=True)
    count = IntField(default=0)
    expires_at = DateTimeField(required=True)
