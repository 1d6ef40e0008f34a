"""Webhooks: subscriptions, signed deliveries to a real local receiver, retries with backoff,
the delivery log, test events, and a subscription switched off after repeated failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from documents.audit import AuditEvent, Notification
from documents.webhooks import WebhookDelivery
from service import import_runner, webhooks
from service.runners import run_until_idle
from service.webhook_delivery import deliver_next

SECRET_BYTES = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers `statuses` in turn
    (then 204)."""

    def __init__(self, statuses: list[int] | None = None):
        self.statuses, self.received = list(statuses or []), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()},
                                          body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def verified(headers: dict, body: bytes, secret_bytes: bytes = SECRET_BYTES) -> dict:
    """Standard Webhooks verification written from the spec, not from the service's code."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, timestamp = lowered["webhook-id"], lowered["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    expected = base64.b64encode(hmac.new(
        secret_bytes, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    signatures = [s.split(",", 1)[1] for s in lowered["webhook-signature"].split()
                  if s.startswith("v1,")]
    assert any(hmac.compare_digest(expected.decode(), s) for s in signatures)
    return json.loads(body)


def subscribe(client, world, url: str, events: list[str], **extra):
    answer = client.post(world.url("/webhooks"), headers=world.headers("admin"),
                         json={"url": url, "events": events, **extra})
    assert answer.status_code == 201, answer.json
    return answer.json


def deliveries(client, world, webhook_id: str) -> list[dict]:
    answer = client.get(world.url(f"/webhooks/{webhook_id}/deliveries"),
                        headers=world.headers("admin"))
    assert answer.status_code == 200, answer.json
    return answer.json["items"]


def test_an_event_is_delivered_signed_to_the_subscriptions_that_want_it(
        world, client, receiver):
    wanted = subscribe(client, world, receiver.url, ["swap.requested"], secret=SECRET)
    subscribe(client, world, receiver.url, ["team.locked"], secret=SECRET)
    assert wanted["secret"] == SECRET
    queued = webhooks.emit_for_school(world.school.id, "swap.requested", {"request_id": "r1"})
    assert queued == 1
    assert run_until_idle(deliver_next) == 1
    [(headers, body)] = receiver.received
    event = verified(headers, body)
    assert (event["type"], event["data"]) == ("swap.requested", {"request_id": "r1"})
    [logged] = deliveries(client, world, wanted["id"])
    assert headers["webhook-id"] == f"msg_{logged['id']}"
    assert logged["status"] == "delivered" and logged["attempts"][0]["status_code"] == 204
    listed = client.get(world.url("/webhooks"), headers=world.headers("admin")).json
    assert listed["total"] == 2 and "secret" not in listed["items"][0]


def test_a_plain_text_secret_signs_with_its_bytes_and_a_missing_one_is_generated(
        world, client, receiver):
    plain = subscribe(client, world, receiver.url, ["team.locked"],
                      secret="a plain secret of some length")
    generated = subscribe(client, world, receiver.url, ["team.locked"])
    assert generated["secret"].startswith("whsec_")
    webhooks.emit_for_school(world.school.id, "team.locked", {"team_id": "t"})
    run_until_idle(deliver_next)
    by_url_secret = {}
    for headers, body in receiver.received:
        msg = headers["webhook-id"].removeprefix("msg_")
        by_url_secret[WebhookDelivery.objects.get(id=msg).subscription_id] = (headers, body)
    verified(*by_url_secret[_oid(plain["id"])], b"a plain secret of some length")
    verified(*by_url_secret[_oid(generated["id"])],
             base64.b64decode(generated["secret"].removeprefix("whsec_")))


def _oid(value: str):
    from bson import ObjectId

    return ObjectId(value)


def test_a_delivery_is_retried_with_backoff_after_the_receiver_failed_twice(
        world, client, monkeypatch):
    monkeypatch.setenv("ROTA_WEBHOOK_RETRY_SECONDS", "0.3,0.6")
    receiver = Receiver([500, 503])
    try:
        hook = subscribe(client, world, receiver.url, ["student.moved"], secret=SECRET)
        webhooks.emit_for_school(world.school.id, "student.moved", {"student_id": "s"})
        assert deliver_next()  # 500
        assert not deliver_next()  # not due before its backoff
        time.sleep(0.35)
        assert deliver_next()  # 503
        time.sleep(0.35)
        assert not deliver_next()  # the second wait is longer
        time.sleep(0.3)
        assert deliver_next()  # 204
    finally:
        receiver.close()
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1  # one message, three attempts
    for headers, body in receiver.received:
        verified(headers, body)
    [logged] = deliveries(client, world, hook["id"])
    assert [a["status_code"] for a in logged["attempts"]] == [500, 503, 204]
    assert logged["status"] == "delivered"


def test_the_test_endpoint_sends_a_test_event(world, client, receiver):
    hook = subscribe(client, world, receiver.url, ["team.locked"], secret=SECRET)
    answer = client.post(world.url(f"/webhooks/{hook['id']}/test"),
                         headers=world.headers("admin"))
    assert answer.status_code == 202, answer.json
    assert answer.json["status"] == "pending"
    run_until_idle(deliver_next)
    [(headers, body)] = receiver.received
    assert verified(headers, body)["type"] == "webhook.test"
    assert deliveries(client, world, hook["id"])[0]["status"] == "delivered"


def test_repeated_failures_fail_deliveries_then_disable_the_subscription(
        world, client, monkeypatch):
    monkeypatch.setenv("ROTA_WEBHOOK_RETRY_HOURS", "0")  # the first failure is final
    monkeypatch.setenv("ROTA_WEBHOOK_DISABLE_AFTER", "2")
    receiver = Receiver([500, 500, 500])
    try:
        hook = subscribe(client, world, receiver.url, ["team.locked"], secret=SECRET)
        for n in range(2):
            webhooks.emit_for_school(world.school.id, "team.locked", {"n": n})
        assert run_until_idle(deliver_next) == 2
    finally:
        receiver.close()
    assert {d["status"] for d in deliveries(client, world, hook["id"])} == {"failed"}
    listed = client.get(world.url("/webhooks"), headers=world.headers("admin")).json["items"]
    assert listed[0]["enabled"] is False
    assert "2 deliveries in a row failed" in listed[0]["disabled_reason"]
    assert Notification.objects(user_id=world.people["admin"].id,
                                kind="webhook_disabled").count() == 1
    assert AuditEvent.objects(school_id=world.school.id, action="webhook_disable").count() == 1
    assert webhooks.emit_for_school(world.school.id, "team.locked", {}) == 0
    enabled = client.patch(world.url(f"/webhooks/{hook['id']}"),
                           headers=world.headers("admin"), json={"enabled": True})
    assert enabled.json["enabled"] is True and enabled.json["consecutive_failures"] == 0


def test_a_finished_import_job_is_an_event(world, client, receiver):
    subscribe(client, world, receiver.url, ["import.finished"], secret=SECRET)
    client.post(world.url("/imports"), headers=world.headers("admin"),
                data={"kind": "users", "file": (io.BytesIO(b"email,name,role\n"
                                                           b"w@hr.test,W,staff\n"), "u.csv")},
                content_type="multipart/form-data")
    assert import_runner.run_next_job()
    run_until_idle(deliver_next)
    [(headers, body)] = receiver.received
    event = verified(headers, body)
    assert event["type"] == "import.finished"
    assert (event["data"]["status"], event["data"]["counts"]["created"]) == ("done", 1)


def test_subscriptions_are_checked_admin_only_and_school_scoped(world, client, receiver):
    admin = world.headers("admin")
    for bad in ({"url": "ftp://example.test/x", "events": ["team.locked"]},
                {"url": "file:///etc/passwd", "events": ["team.locked"]},
                {"url": receiver.url, "events": ["pets.fed"]},
                {"url": receiver.url, "events": []},
                {"url": receiver.url, "events": ["team.locked"], "secret": "whsec_!!notbase64!!"}):
        assert client.post(world.url("/webhooks"), headers=admin, json=bad).status_code == 422
    assert client.post(world.url("/webhooks"), headers=world.headers("staff"),
                       json={"url": receiver.url, "events": ["team.locked"]}).status_code == 403
    hook = subscribe(client, world, receiver.url, ["team.locked"])
    foreign = world.url(f"/webhooks/{hook['id']}", school=world.other_school)
    assert client.delete(foreign, headers=world.headers("other_admin")).status_code == 404
    assert client.delete(world.url(f"/webhooks/{hook['id']}"), headers=admin).status_code == 204
    assert client.get(world.url("/webhooks"), headers=admin).json["total"] == 0
    events = [e.action for e in AuditEvent.objects(school_id=world.school.id,
                                                   entity_type="webhook")]
    assert sorted(events) == ["webhook_create", "webhook_delete"]


@pytest.mark.integration
def test_the_workers_run_an_uploaded_job_and_deliver_its_event(live, receiver):
    """gunicorn with 4 workers: their runner threads claim the job once, import it, and send
    import.finished to a receiver in this process, signed."""
    import requests

    world, admin = live.world, live.world.headers("admin")
    hook = requests.post(live.url(world.url("/webhooks")), headers=admin, timeout=10,
                         json={"url": receiver.url, "events": ["import.finished"],
                               "secret": SECRET})
    assert hook.status_code == 201, hook.text
    queued = requests.post(live.url(world.url("/imports")), headers=admin, timeout=10,
                           data={"kind": "users"},
                           files={"file": ("u.csv", b"email,name,role\nlive@hr.test,L,staff\n")})
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not receiver.received:
        time.sleep(0.2)
    [(headers, body)] = receiver.received
    event = verified(headers, body)
    assert event["data"]["job_id"] == queued.json()["id"]
    assert (event["data"]["status"], event["data"]["counts"]["created"]) == ("done", 1)
    job = requests.get(live.url(world.url(f"/imports/{queued.json()['id']}")), headers=admin,
                       timeout=10).json()
    assert (job["status"], job["rows_done"], job["rows_total"]) == ("done", 1, 1)
    assert job["started_at"] and job["finished_at"]


@pytest.mark.parametrize("name, value", [("ROTA_WEBHOOK_RETRY_SECONDS", "5,soon"),
                                         ("ROTA_WEBHOOK_TIMEOUT", "-1"),
                                         ("ROTA_RUNNERS", "maybe"),
                                         ("ROTA_IMPORT_MAX_BYTES", "20MB")])
def test_a_wrong_import_or_webhook_variable_stops_the_start_naming_it(monkeypatch, name, value):
    from api.config import ConfigError, validate

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        validate()


def test_an_unreachable_receiver_is_an_attempt_with_its_error_then_a_retry(world, client):
    hook = subscribe(client, world, "http://127.0.0.1:9/nobody", ["team.locked"])
    webhooks.emit_for_school(world.school.id, "team.locked", {"team_id": "t"})
    assert deliver_next()
    [logged] = deliveries(client, world, hook["id"])
    assert logged["status"] == "pending" and logged["next_attempt_at"] > logged["created_at"]
    assert logged["attempts"][0]["error"] and "status_code" not in logged["attempts"][0]
