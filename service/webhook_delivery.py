"""Sending the webhook outbox: claim a due delivery, sign it, POST it, record the outcome.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): headers `webhook-id`
(the delivery's id, the same on every attempt: receivers drop repeats by it),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,` + base64 of
HMAC-SHA256 over `{id}.{timestamp}.{body}` with the subscription's secret (the bytes after
`whsec_` base64-decoded, else the secret's UTF-8 bytes). The body is
`{"type": event, "timestamp": ISO time of the event, "data": payload}`.

A 2xx answer within `ROTA_WEBHOOK_TIMEOUT` seconds delivers it. Anything else is tried again
after `ROTA_WEBHOOK_RETRY_SECONDS` (5 s, 30 s, 2 min, 10 min, 1 h, 3 h, 6 h, then every 6 h)
until `ROTA_WEBHOOK_RETRY_HOURS` (24) have passed since the event: then the delivery fails.
`ROTA_WEBHOOK_DISABLE_AFTER` (5) deliveries failed in a row disable the subscription and
notify the school's admins. Redirects are not followed (a receiver cannot bounce a delivery
to an internal address).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from datetime import timedelta

from pymongo import ReturnDocument

from documents.accounts import User
from documents.audit import Notification
from documents.base import utcnow
from documents.webhooks import WebhookDelivery, WebhookSubscription
from service import audit, notifications
from service.context import SYSTEM
from service.runners import claim, runner_name
from service.webhooks import signing_key

LEASE_SECONDS = 60
IDLE_SECONDS = 1.0
DEFAULT_RETRY_SECONDS = "5,30,120,600,3600,10800,21600"
USER_AGENT = "Rota-Webhooks/1"


SETTINGS = {"ROTA_WEBHOOK_TIMEOUT": "5", "ROTA_WEBHOOK_RETRY_HOURS": "24",
            "ROTA_WEBHOOK_DISABLE_AFTER": "5"}


def setting(name: str) -> float:
    """A number >= 0 from the environment (ValueError naming the variable otherwise)."""
    value = os.environ.get(name, "").strip() or SETTINGS[name]
    return _number(name, value)


def retry_delays() -> list[float]:
    name = "ROTA_WEBHOOK_RETRY_SECONDS"
    value = os.environ.get(name, "").strip() or DEFAULT_RETRY_SECONDS
    return [_number(name, part) for part in value.split(",")]


def check_settings() -> None:
    """Every webhook variable, for the start-up check (api/config.py)."""
    retry_delays()
    for name in SETTINGS:
        setting(name)


def _number(name: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"{name} must be a number >= 0 (seconds, hours or a count; retries "
                         f"a comma-separated list), not {text!r}.")
    return number


def delay_before(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th failed attempt (1-based)."""
    delays = retry_delays()
    return delays[min(attempt, len(delays)) - 1]


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_of(delivery: dict) -> bytes:
    created = delivery["created_at"].isoformat(timespec="milliseconds") + "Z"
    return json.dumps({"type": delivery["event"], "timestamp": created,
                       "data": delivery.get("payload", {})}, separators=(",", ":"),
                      default=str).encode()


def message_id(delivery: dict) -> str:
    return f"msg_{delivery['_id']}"


def deliver_next(runner_id: str | None = None) -> bool:
    """Claim one due delivery and attempt it; False when none was due."""
    runner_id = runner_id or runner_name()
    delivery = claim(WebhookDelivery._get_collection(), ("pending", "sending"),
                     "next_attempt_at", "sending", LEASE_SECONDS, runner_id)
    if delivery is None:
        return False
    Attempt(delivery, runner_id).run()
    return True


class Attempt:
    """One attempt of one claimed delivery, and what follows from its outcome."""

    def __init__(self, delivery: dict, runner_id: str):
        self.delivery, self.runner_id = delivery, runner_id
        self.school_id = delivery["school_id"]

    def run(self) -> None:
        subscription = WebhookSubscription._get_collection().find_one(
            {"_id": self.delivery["subscription_id"], "school_id": self.school_id})
        if subscription is None:
            self._settle("failed", {"at": utcnow(), "error": "the webhook was deleted"})
            return
        if not subscription.get("enabled") and self.delivery["event"] != "webhook.test":
            self._settle("failed", {"at": utcnow(), "error": "the webhook is disabled"})
            return
        outcome = post(subscription, self.delivery)
        if outcome.get("status_code") and 200 <= outcome["status_code"] < 300:
            if self._settle("delivered", outcome):
                _reset_failures(subscription)
        elif self._retry_or_fail(outcome) == "failed":
            _count_failure(subscription)

    def _guard(self) -> dict:
        return {"_id": self.delivery["_id"], "school_id": self.school_id, "status": "sending",
                "claimed_by": self.runner_id}

    def _settle(self, status: str, outcome: dict, next_attempt_at=None) -> bool:
        now = utcnow()
        fields = {"status": status, "claimed_by": None,
                  "next_attempt_at": next_attempt_at or now}
        if status in ("delivered", "failed"):
            fields[f"{status}_at"] = now
        settled = WebhookDelivery._get_collection().find_one_and_update(
            self._guard(), {"$set": fields, "$push": {"attempts": outcome}},
            return_document=ReturnDocument.AFTER)
        return settled is not None

    def _retry_or_fail(self, outcome: dict) -> str:
        attempt = len(self.delivery.get("attempts", [])) + 1
        next_at = utcnow() + timedelta(seconds=delay_before(attempt))
        give_up_at = self.delivery["created_at"] + timedelta(
            hours=setting("ROTA_WEBHOOK_RETRY_HOURS"))
        status = "failed" if next_at > give_up_at else "pending"
        return status if self._settle(status, outcome, next_at) else "lost"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx is the answer: not delivered


_opener = urllib.request.build_opener(_NoRedirects)


def post(subscription: dict, delivery: dict) -> dict:
    """POST the signed delivery; the attempt's record: when, status code or error, time."""
    body, timestamp, msg_id = body_of(delivery), int(time.time()), message_id(delivery)
    request = urllib.request.Request(subscription["url"], data=body, method="POST", headers={
        "content-type": "application/json", "user-agent": USER_AGENT,
        "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(subscription["secret"], msg_id, timestamp, body)})
    started, record = time.monotonic(), {"at": utcnow()}
    try:
        with _opener.open(request, timeout=setting("ROTA_WEBHOOK_TIMEOUT")) as response:
            record["status_code"] = response.status
    except urllib.error.HTTPError as exc:
        record["status_code"] = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        record["error"] = str(getattr(exc, "reason", exc))[:300]
    record["ms"] = round((time.monotonic() - started) * 1000)
    return record


def _reset_failures(subscription: dict) -> None:
    if subscription.get("consecutive_failures"):
        WebhookSubscription._get_collection().update_one(
            {"_id": subscription["_id"], "school_id": subscription["school_id"]},
            {"$set": {"consecutive_failures": 0}})


def _count_failure(subscription: dict) -> None:
    """One more delivery failed for good; the Nth in a row disables the subscription."""
    limit = int(setting("ROTA_WEBHOOK_DISABLE_AFTER"))
    school_id = subscription["school_id"]
    counted = WebhookSubscription._get_collection().find_one_and_update(
        {"_id": subscription["_id"], "school_id": school_id},
        {"$inc": {"consecutive_failures": 1}}, return_document=ReturnDocument.AFTER)
    if counted is None or counted["consecutive_failures"] < limit:
        return
    reason = f"{counted['consecutive_failures']} deliveries in a row failed"
    disabled = WebhookSubscription._get_collection().update_one(
        {"_id": subscription["_id"], "school_id": school_id, "enabled": True},
        {"$set": {"enabled": False, "disabled_reason": reason, "updated_at": utcnow()}})
    if disabled.modified_count:
        audit.record(SYSTEM, school_id, "webhook_disable", "webhook", subscription["_id"],
                     after={"enabled": False, "disabled_reason": reason})
        _notify_admins(counted, reason)


def _notify_admins(subscription: dict, reason: str) -> None:
    admins = User.objects(school_id=subscription["school_id"], role="school_admin",
                          is_active=True).scalar("id")
    recipients = {*admins, subscription.get("created_by")} - {None}
    notifications.notify_many([Notification(
        user_id=user_id, school_id=subscription["school_id"], kind="webhook_disabled",
        message=f"The webhook to {subscription['url']} was switched off: {reason}. "
                f"Fix the receiver, then PATCH it with enabled: true.",
        data={"webhook_id": str(subscription["_id"]), "reason": reason})
        for user_id in recipients])
