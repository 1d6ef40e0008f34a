"""Calendar feed URLs: the caller's secret `.ics` address, which calendar apps poll without a
bearer token (see service/calendar_feeds.py)."""

from __future__ import annotations

import hashlib
import hmac
import re

from flask import Response, current_app, request, url_for
from flask_smorest import Blueprint
from marshmallow import fields

from api.schemas import BaseSchema
from api.security import authenticated
from service.calendar_feeds import CalendarFeedReader, CalendarFeeds

blp = Blueprint("calendar_feeds", __name__, url_prefix="/calendar", description=(
    "Calendar feeds: each person of a school has a secret URL of their timetable in iCalendar "
    "form (RFC 5545, in the school's time zone) that calendar apps poll without a bearer "
    "token. Rotating it makes the old URL answer 404 at once; so does revoking it. Each URL "
    "may be read ROTA_CALENDAR_FEED_RATE_LIMIT times a minute (429 with Retry-After)."))

PEOPLE = ["school_admin", "staff", "student"]
# Calendar apps poll every few minutes; a private cache spares the database repeats.
CACHE_CONTROL = "private, max-age=300"
DTSTAMP = re.compile(rb"DTSTAMP:[^\r\n]*\r\n")


class FeedSchema(BaseSchema):
    url = fields.String(metadata={
        "description": "The feed's address, to paste into a calendar app. Secret: anyone "
                       "with it reads the timetable.",
        "example": "https://rota.example.org/api/v1/calendar/3q2-7wEXAMPLE.ics"})


def feed_key() -> bytes:
    """The server key the feed tokens are derived from (never the JWT signing key itself)."""
    secret = current_app.config["JWT_SECRET_KEY"].encode()
    return hmac.new(secret, b"rota calendar feeds", hashlib.sha256).digest()


def feed_url(token: str) -> dict:
    return {"url": url_for("calendar_feeds.read_feed", token=token, _external=True)}


@blp.route("/feed", methods=["GET"])
@blp.response(200, FeedSchema)
@blp.doc(**{"x-roles": PEOPLE}, description="The caller's feed URL, made on first use.")
@authenticated
def get_feed(actor):
    return feed_url(CalendarFeeds(actor, feed_key()).token())


@blp.route("/feed/rotate", methods=["POST"])
@blp.response(200, FeedSchema)
@blp.doc(**{"x-roles": PEOPLE}, description="A new feed URL; the old one answers 404.")
@authenticated
def rotate_feed(actor):
    return feed_url(CalendarFeeds(actor, feed_key()).rotate())


@blp.route("/feed", methods=["DELETE"])
@blp.response(204)
@blp.doc(**{"x-roles": PEOPLE}, description="Revoke the feed: its URL answers 404. A later "
                                            "GET /calendar/feed makes a new one.")
@authenticated
def revoke_feed(actor):
    CalendarFeeds(actor, feed_key()).revoke()


@blp.route("/<token>.ics", methods=["GET"])
@blp.doc(security=[], responses={
    "200": {"description": "The timetable (RFC 5545): a VTIMEZONE of the school's zone, one "
                           "weekly series per lesson and term (TZID, RRULE UNTIL the term's "
                           "end, EXDATE for holidays), dated changes as RECURRENCE-ID "
                           "overrides. A student's feed is an empty calendar.",
            "content": {"text/calendar": {"schema": {"type": "string"}}}},
    "304": {"description": "Unchanged since the `ETag` sent in `If-None-Match`."},
    "404": {"description": "No feed at this address: unknown, rotated or revoked."},
    "429": {"description": "Read too often this minute: wait `Retry-After` seconds."}})
def read_feed(token):
    """The feed as calendar apps poll it: no bearer token."""
    body = CalendarFeedReader().read(token, current_app.config["ROTA_CALENDAR_FEED_RATE_LIMIT"])
    response = Response(body, mimetype="text/calendar", headers={
        "Cache-Control": CACHE_CONTROL, "Content-Disposition": 'inline; filename="rota.ics"'})
    # DTSTAMP is the time of reading: left out, an unchanged timetable keeps its ETag.
    response.set_etag(hashlib.sha256(DTSTAMP.sub(b"", body)).hexdigest(), weak=True)
    return response.make_conditional(request)
