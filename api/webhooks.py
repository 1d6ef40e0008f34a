"""Webhooks: a school's subscriptions to its events, and their delivery logs (admins)."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from documents.webhooks import DELIVERY_STATUSES
from service import runners, webhook_delivery
from service.context import ADMIN_ROLES
from service.webhooks import EVENTS, TEST_EVENT, Webhooks

EVENT_LIST = "\n".join(f"- `{event}`: {payload}" for event, payload in EVENTS.items())

blp = Blueprint(
    "webhooks", __name__, url_prefix="/schools",
    description=f"""Webhooks (admins): the school's events POSTed to your URL as JSON
`{{"type": event, "timestamp": ISO time of the event, "data": payload}}`, signed per
[Standard Webhooks](https://www.standardwebhooks.com): headers `webhook-id` (the same on
every retry of one delivery: drop repeats by it), `webhook-timestamp` (Unix seconds of the
attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of "{{id}}.{{timestamp}}.{{body}}">`.
The HMAC key is the base64-decoded part after `whsec_` when the secret starts with it, else
the secret's UTF-8 bytes; a secret left out is generated (`whsec_...`) and answered once, at
creation. Delivery runs in the background from an outbox in the database; a 2xx answer
within `ROTA_WEBHOOK_TIMEOUT` (5 s) delivers, anything else is retried after 5 s, 30 s,
2 min, 10 min, 1 h, 3 h, then every 6 h for 24 h, then fails; 5 failed deliveries in a row
switch the subscription off (the admins are notified; PATCH `enabled: true` turns it on).
Redirects are not followed. URLs must be http(s): restrict the service's egress in your
deployment (no internal networks, no metadata address).

Events and their `data`:

{EVENT_LIST}
- `{TEST_EVENT}`: sent by `POST .../webhooks/{{id}}/test` only.""")


@blp.record_once
def _start_runner(_state) -> None:
    runners.start_in_background("webhook-runner", webhook_delivery.deliver_next,
                                webhook_delivery.IDLE_SECONDS)


class WebhookCreateSchema(BaseSchema):
    url = fields.String(required=True, validate=validate.Length(min=8, max=2000))
    secret = fields.String(validate=validate.Length(min=16, max=200), metadata={
        "description": "`whsec_<base64>` or any text of 16+ bytes; generated when left out."})
    events = fields.List(fields.String(validate=validate.OneOf(list(EVENTS))), required=True,
                         validate=validate.Length(min=1))


class WebhookUpdateSchema(BaseSchema):
    url = fields.String(validate=validate.Length(min=8, max=2000))
    secret = fields.String(validate=validate.Length(min=16, max=200))
    events = fields.List(fields.String(validate=validate.OneOf(list(EVENTS))),
                         validate=validate.Length(min=1))
    enabled = fields.Boolean(metadata={"description": "true also clears the failure count."})


class WebhookSchema(BaseSchema):
    id = Id()
    url = fields.String()
    events = fields.List(fields.String())
    enabled = fields.Boolean()
    consecutive_failures = fields.Integer()
    disabled_reason = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "Shown only in this answer."})


class AttemptSchema(BaseSchema):
    at = Timestamp()
    status_code = fields.Integer(metadata={"optional": True,
                                           "description": "The receiver's answer, if any."})
    error = fields.String(metadata={"optional": True,
                                    "description": "Why no answer came (timeout, refused)."})
    ms = fields.Integer()


class DeliverySchema(BaseSchema):
    id = Id()
    event = fields.String()
    payload = fields.Dict()
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    attempts = fields.List(fields.Nested(AttemptSchema))
    next_attempt_at = Timestamp()
    delivered_at = Timestamp(allow_none=True)
    failed_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class DeliveryArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))


@blp.route("/<school_id>/webhooks", methods=["POST"])
@blp.arguments(WebhookCreateSchema)
@blp.response(201, WebhookCreatedSchema)
@school_route(roles=ADMIN_ROLES)
def create_webhook(ctx, body):
    return Webhooks(ctx).create(**body)


@blp.route("/<school_id>/webhooks", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(WebhookSchema))
@school_route(roles=ADMIN_ROLES)
def list_webhooks(ctx, args):
    return Webhooks(ctx).list(**args)


@blp.route("/<school_id>/webhooks/<webhook_id>", methods=["PATCH"])
@blp.arguments(WebhookUpdateSchema)
@blp.response(200, WebhookSchema)
@school_route(roles=ADMIN_ROLES)
def update_webhook(ctx, body, webhook_id):
    return Webhooks(ctx).update(webhook_id, **body)


@blp.route("/<school_id>/webhooks/<webhook_id>", methods=["DELETE"])
@blp.response(204)
@school_route(roles=ADMIN_ROLES)
def delete_webhook(ctx, webhook_id):
    Webhooks(ctx).delete(webhook_id)


@blp.route("/<school_id>/webhooks/<webhook_id>/deliveries", methods=["GET"])
@blp.arguments(DeliveryArgs, location="query")
@blp.response(200, page_of(DeliverySchema))
@school_route(roles=ADMIN_ROLES)
def list_deliveries(ctx, args, webhook_id):
    """The subscription's deliveries, newest first, each with its attempts."""
    return Webhooks(ctx).deliveries(webhook_id, **args)


@blp.route("/<school_id>/webhooks/<webhook_id>/test", methods=["POST"])
@blp.response(202, DeliverySchema)
@school_route(roles=ADMIN_ROLES)
def test_webhook(ctx, webhook_id):
    """Queue a `webhook.test` delivery now; follow it in the delivery log."""
    return Webhooks(ctx).send_test(webhook_id)
