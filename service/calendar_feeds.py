"""Secret calendar feed URLs: calendar apps poll `GET /api/v1/calendar/{token}.ics` without a
bearer token.

Every person of a school (staff, school admins, students) may have one feed. Its token is
derived, never stored: HMAC-SHA256 of "<feed id>:<nonce>" under a server key (from the JWT
secret), so `GET /calendar/feed` can show the same URL again while the database holds only
the token's SHA-256 (a request finds its feed by it in one indexed read) and the nonce,
useless without the server key. Rotating draws a new nonce and replaces the hash in the same
update, so the old URL answers 404 at once; revoking deletes the feed. A new server key makes
the next `GET /calendar/feed` store the hash of the token it shows (the old URL stops).

What a feed holds: a staff member's (or school admin's) lessons, as the timetable export
(service/calendar_ical.py). A student's feed is an empty but valid calendar: no class maps to
a student, and weekly groups and tracks have no times. So is the feed of a school whose
timetable module is off. Each feed may be read `limit` times a minute (a database counter per
feed and minute, shared by every worker; 429 with Retry-After beyond).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from bson import ObjectId
from mongoengine.errors import NotUniqueError
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.accounts import School, User
from documents.base import utcnow
from documents.calendar_feeds import CalendarFeed, CalendarFeedWindow
from service import audit
from service.calendar import zone
from service.calendar_ical import empty_calendar, timetable_calendar
from service.context import Actor
from service.errors import Forbidden, NotFound, TooManyRequests
from service.service_accounts import EPOCH, RATE_WINDOW, Quota

TEACHING_ROLES = ("staff", "school_admin")


def feed_token(key: bytes, feed_id, nonce: str) -> str:
    digest = hmac.new(key, f"{feed_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    # A fast hash suffices: the token is 256 bits from a keyed hash, beyond any guessing.
    return hashlib.sha256(token.encode()).hexdigest()


class CalendarFeeds:
    """The caller's own feed: shown, rotated, revoked. Every change is audited."""

    def __init__(self, actor: Actor, key: bytes):
        if actor.service_account is not None or actor.school_id is None:
            raise Forbidden("Calendar feeds belong to the people of a school.",
                            code="no_calendar_feed")
        self.actor, self.key = actor, key

    def token(self) -> str:
        """The token of the caller's feed, made on first use."""
        feed = self._feed() or self._create()
        if token_hash(self._token_of(feed)) != feed.token_hash:  # the server key changed
            feed = self._store(feed, feed.nonce, "rekey")
        return self._token_of(feed)

    def rotate(self) -> str:
        """A new token; the old one answers 404 from now on."""
        feed = self._feed()
        feed = self._create() if feed is None else self._store(feed, secrets.token_hex(16),
                                                                "rotate")
        return self._token_of(feed)

    def revoke(self) -> None:
        """The feed is deleted (its URL answers 404); a later GET makes a new one."""
        feed = self._feed()
        if feed is not None and CalendarFeed.objects(id=feed.id).delete():
            self._audit("revoke", feed)

    def _create(self) -> CalendarFeed:
        feed = CalendarFeed(id=ObjectId(), user_id=self.actor.user_id,
                            school_id=self.actor.school_id, nonce=secrets.token_hex(16))
        feed.token_hash = token_hash(self._token_of(feed))
        try:
            feed.save(force_insert=True)
        except NotUniqueError:  # a parallel first request made it
            return self._feed()
        self._audit("create", feed)
        return feed

    def _feed(self) -> CalendarFeed | None:
        return CalendarFeed.objects(user_id=self.actor.user_id).first()

    def _token_of(self, feed: CalendarFeed) -> str:
        return feed_token(self.key, feed.id, feed.nonce)

    def _store(self, feed: CalendarFeed, nonce: str, action: str) -> CalendarFeed:
        """One update of the hash (and nonce), the old token stopping at once; conditional on
        the hash read, so of parallel rotations one wins and every caller gets its URL."""
        stored = CalendarFeed.objects(id=feed.id, token_hash=feed.token_hash).modify(
            new=True, set__nonce=nonce, set__rotated_at=utcnow(),
            set__token_hash=token_hash(feed_token(self.key, feed.id, nonce)))
        if stored is None:  # another request rotated or revoked it meanwhile
            return self._feed() or self._create()
        self._audit(action, stored)
        return stored

    def _audit(self, action: str, feed: CalendarFeed) -> None:
        # No secret in the trail: the feed's id and owner only.
        audit.record(self.actor, feed.school_id, action, "calendar_feed", feed.id,
                     after={"user_id": str(feed.user_id)})


class CalendarFeedReader:
    """A feed URL as a calendar app polls it: no bearer, rate limited, 404 when unknown."""

    def __init__(self, now: datetime | None = None):
        self.now = now or utcnow()

    def read(self, token: str, limit: int) -> bytes:
        feed = CalendarFeed.objects(token_hash=token_hash(token)).first()
        if feed is None:
            raise NotFound("No calendar feed at this address (rotated or revoked?).")
        self._require_quota(self._count(feed, limit))
        school = School.objects(id=feed.school_id).only("timezone", "modules").first()
        owner = User.objects(id=feed.user_id).only("name", "role", "school_id",
                                                   "is_active").first()
        if school is None or owner is None or not owner.is_active \
                or owner.school_id != feed.school_id:
            raise NotFound("No calendar feed at this address (rotated or revoked?).")
        return self._calendar(school, owner).to_ical()

    def _calendar(self, school: School, owner: User):
        title, place = f"Timetable of {owner.name}", zone(school.timezone or "UTC")
        if owner.role not in TEACHING_ROLES or not school.modules.timetable:
            return empty_calendar(title, place)
        return timetable_calendar(school.id, owner.id, title, place, self.now)

    def _count(self, feed: CalendarFeed, limit: int) -> Quota:
        """This request in the feed's current minute: one atomic `$inc` upsert."""
        window = int((self.now - EPOCH) / RATE_WINDOW)
        ends = EPOCH + (window + 1) * RATE_WINDOW
        counted = self._increment(f"{feed.id}:{window}", ends)
        reset = max(1, int((ends - self.now).total_seconds() + 0.999))
        return Quota(limit=limit, used=counted["count"], reset=reset)

    @staticmethod
    def _increment(window_id: str, ends: datetime) -> dict:
        def increment():
            return CalendarFeedWindow._get_collection().find_one_and_update(
                {"_id": window_id}, {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": ends}},
                upsert=True, return_document=ReturnDocument.AFTER)

        try:
            return increment()
        except DuplicateKeyError:  # the window's first two requests raced to insert it
            return increment()

    @staticmethod
    def _require_quota(quota: Quota) -> None:
        if quota.exceeded:
            raise TooManyRequests(f"This calendar feed was read more than {quota.limit} times "
                                  f"this minute; try again in {quota.reset} seconds.",
                                  quota.reset)
