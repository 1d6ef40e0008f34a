"""Webhook subscriptions of a school and the outbox of their deliveries."""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned, utcnow

DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed")


class WebhookSubscription(SchoolOwned):
    meta = {"collection": "webhook_subscriptions",
            "indexes": [["school_id", "enabled", "events"]]}

    url = StringField(required=True)
    # The signing key as given (`whsec_<base64>` or any text); never answered back.
    secret = StringField(required=True)
    events = ListField(StringField(), required=True)
    enabled = BooleanField(default=True)
    # Deliveries that failed for good in a row; reset by a delivered one.
    consecutive_failures = IntField(default=0)
    disabled_reason = StringField()
    created_by = ObjectIdField()
    updated_at = DateTimeField(default=utcnow)


class WebhookDelivery(SchoolOwned):
    """One event for one subscription: the outbox. `emit` inserts it `pending`; a runner
    claims it (pending -> sending, `claimed_by`, `next_attempt_at` a lease ahead), POSTs it
    and sets it `delivered`, or `pending` again with the next attempt's time, or `failed`
    once retries span `ROTA_WEBHOOK_RETRY_HOURS`. A `sending` delivery whose lease passed lost
    its runner and is claimed again."""

    meta = {"collection": "webhook_deliveries",
            "indexes": [["school_id", "status", "next_attempt_at"],
                        ["school_id", "subscription_id", "-created_at"]]}

    subscription_id = ObjectIdField(required=True)
    event = StringField(required=True)
    payload = DictField()
    status = StringField(required=True, choices=DELIVERY_STATUSES, default="pending")
    next_attempt_at = DateTimeField(required=True)
    claimed_by = StringField()
    attempts = ListField(DictField())  # {at, status_code?, error?, ms}
    delivered_at = DateTimeField()
    failed_at = DateTimeField()
