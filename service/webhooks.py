"""Webhook subscriptions (admins) and `emit`, which puts an event in the outbox.

`emit(ctx, event, payload)` inserts one `WebhookDelivery` per enabled subscription of the
school that wants the event, in one write, next to the audit of the change it reports;
service/webhook_delivery.py sends them from the database, outside any request, so a restart
loses nothing. Deliveries are signed per Standard Webhooks (service/webhook_delivery.py).

URLs must be http(s); the service does not otherwise police where they point, so deployments
should restrict the workers' egress (no internal networks, no cloud metadata address).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable
from datetime import date, datetime
from urllib.parse import urlsplit

from bson import ObjectId

from documents.base import utcnow
from documents.webhooks import WebhookDelivery, WebhookSubscription
from service.base import SchoolService
from service.context import SchoolContext
from service.errors import ValidationFailed
from service.pagination import Page, paginate

# Every event a subscription may ask for, with what its payload (`data`) holds.
EVENTS = {
    "swap.requested": "the swap request: id, requester and target staff, assignment ids",
    "swap.accepted": "the swap request after acceptance: id, the assignments exchanged",
    "swap.rejected": "the swap request: id, who rejected it",
    "swap.cancelled": "the swap request: id, who cancelled it",
    "assignment.overridden": "the assignment: id, staff before and after, day, period",
    "cover.assigned": "the cover: date, assignment id, action, cover staff or room",
    "student.moved": "the move: program, week, student, group before and after",
    "instructor.reassigned": "the track: id, student, instructor before and after",
    "team.locked": "the team: id, project, version, members",
    "import.finished": "the import job: job_id, kind, status (done|failed), dry_run, counts, "
                       "rows_done, rows_total, error",
}
TEST_EVENT = "webhook.test"  # sent by POST S/webhooks/{id}/test only
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16


def emit(ctx: SchoolContext, event: str, payload: dict) -> int:
    """Queue `event` for every enabled subscription of the school that wants it; the number
    of deliveries queued."""
    return _queue(ctx.school_id, event, [payload], _known(ctx, event))


def emit_many(ctx: SchoolContext, event: str, payloads: Iterable[dict]) -> int:
    """One event per payload (a bulk change): one read and one write in all (no read when
    the request read the subscriptions with its school: `SchoolContext.webhooks`)."""
    return _queue(ctx.school_id, event, list(payloads), _known(ctx, event))


def _known(ctx: SchoolContext, event: str) -> list | None:
    """The ids of the subscriptions wanting `event`, when read with the school; else None."""
    webhooks = getattr(ctx, "webhooks", None)
    if webhooks is None:
        return None
    return [subscription_id for subscription_id, events in webhooks if event in events]


def emit_for_school(school_id, event: str, payload: dict) -> int:
    return _queue(school_id, event, [payload])


def _queue(school_id, event: str, payloads: list[dict], subscriptions: list | None = None
           ) -> int:
    if not payloads:
        return 0
    if subscriptions is None:
        subscriptions = list(WebhookSubscription.objects.for_school(school_id).filter(
            enabled=True, events=event).scalar("id"))
    deliveries = [_delivery(school_id, subscription_id, event, json_safe(payload))
                  for subscription_id in subscriptions for payload in payloads]
    if deliveries:
        WebhookDelivery.objects.insert(deliveries, load_bulk=False)
    return len(deliveries)


def json_safe(value):
    """Ids as strings, times as ISO-8601 UTC with Z: what the receiver gets as JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _delivery(school_id, subscription_id, event: str, payload: dict) -> WebhookDelivery:
    now = utcnow()
    return WebhookDelivery(school_id=school_id, subscription_id=subscription_id, event=event,
                           payload=payload, next_attempt_at=now, created_at=now)


def signing_key(secret: str) -> bytes:
    """The HMAC key: the base64 after `whsec_` (Standard Webhooks), else the text's bytes."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    return secret.encode()


class Webhooks(SchoolService):
    """A school's subscriptions and their delivery logs (admins)."""

    def create(self, url: str, events: list[str], secret: str | None = None
               ) -> WebhookSubscription:
        """A subscription; its secret is generated when none was given (the API shows the
        secret in this answer only)."""
        self.require_admin()
        secret = secret or SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()
        subscription = WebhookSubscription(
            school_id=self.school_id, url=_checked_url(url), events=_checked_events(events),
            secret=_checked_secret(secret), created_by=self.actor.user_id).save()
        self.audit("webhook_create", "webhook", subscription.id, after=_summary(subscription))
        return subscription

    def list(self, page: int = 1, page_size: int = 50) -> Page:
        self.require_admin()
        return paginate(WebhookSubscription.objects.for_school(self.school_id).order_by(
            "-created_at", "-id"), page, page_size)

    def update(self, subscription_id, url: str | None = None, events: list[str] | None = None,
               secret: str | None = None, enabled: bool | None = None) -> WebhookSubscription:
        """Change what is given; enabling a subscription clears its failure count."""
        self.require_admin()
        subscription = self.get(WebhookSubscription, subscription_id, "webhook")
        before = _summary(subscription)
        changes: dict = {}
        if url is not None:
            changes["url"] = _checked_url(url)
        if events is not None:
            changes["events"] = _checked_events(events)
        if secret is not None:
            changes["secret"] = _checked_secret(secret)
        if enabled is not None:
            changes["enabled"] = enabled
        if enabled:
            changes.update(consecutive_failures=0, disabled_reason=None)
        if changes:
            WebhookSubscription.objects.for_school(self.school_id).filter(
                id=subscription.id).update_one(**{f"set__{k}": v for k, v in changes.items()},
                                               set__updated_at=utcnow())
            subscription.reload()
            self.audit("webhook_update", "webhook", subscription.id, before=before,
                       after=_summary(subscription))
        return subscription

    def delete(self, subscription_id) -> None:
        """The subscription and its delivery log; deliveries not sent yet are dropped."""
        self.require_admin()
        subscription = self.get(WebhookSubscription, subscription_id, "webhook")
        WebhookDelivery.objects.for_school(self.school_id).filter(
            subscription_id=subscription.id).delete()
        subscription.delete()
        self.audit("webhook_delete", "webhook", subscription.id, before=_summary(subscription))

    def deliveries(self, subscription_id, status: str | None = None, page: int = 1,
                   page_size: int = 50) -> Page:
        self.require_admin()
        subscription = self.get(WebhookSubscription, subscription_id, "webhook")
        found = WebhookDelivery.objects.for_school(self.school_id).filter(
            subscription_id=subscription.id)
        if status:
            found = found.filter(status=status)
        return paginate(found.order_by("-created_at", "-id"), page, page_size)

    def send_test(self, subscription_id) -> WebhookDelivery:
        """Queue a `webhook.test` delivery to this subscription (enabled or not, whatever its
        events), delivered and logged like any other."""
        self.require_admin()
        subscription = self.get(WebhookSubscription, subscription_id, "webhook")
        delivery = _delivery(self.school_id, subscription.id, TEST_EVENT,
                             {"webhook_id": str(subscription.id), "message": "test delivery"})
        delivery.id = ObjectId()
        delivery.save(force_insert=True)
        self.audit("webhook_test", "webhook", subscription.id, after={"delivery_id": delivery.id})
        return delivery


def _summary(subscription: WebhookSubscription) -> dict:
    return {"url": subscription.url, "events": list(subscription.events),
            "enabled": subscription.enabled}


def _checked_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("The URL must be http:// or https:// with a host.",
                               {"url": ["Must be an http(s) URL with a host."]})
    return url.strip()


def _checked_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        message = (f"Unknown event(s): {', '.join(unknown)}." if unknown
                   else "Name at least one event.")
        raise ValidationFailed(message, {"events": [f"{message} One of: {', '.join(EVENTS)}."]})
    return sorted(set(events))


def _checked_secret(secret: str) -> str:
    try:
        key = signing_key(secret)
    except (binascii.Error, ValueError):
        key = b""
        bad = "A secret starting with whsec_ must go on in base64."
    else:
        bad = f"The secret must be at least {MIN_SECRET_BYTES} bytes."
    if len(key) < MIN_SECRET_BYTES:
        raise ValidationFailed(bad, {"secret": [bad]})
    return secret
