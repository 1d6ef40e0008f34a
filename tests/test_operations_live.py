"""Operations against real processes: /metrics over several gunicorn workers, probes with the
database paused or stopped, one execution of parallel POSTs sharing an Idempotency-Key."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
import requests

from documents.accounts import User
from documents.audit import AuditEvent
from tests.helpers import parallel
from tests.test_operations import sample

JWT = "probes-secret-" + "z" * 40
PROBE_DEADLINE = 1.5  # seconds: a ping bounded to 1 s, plus the request around it


def access_lines(log_path, request_ids: set[str]) -> list[dict]:
    lines = []
    for text in log_path.read_text().splitlines():
        if text.startswith("{"):
            entry = json.loads(text)
            if entry.get("request_id") in request_ids and entry["logger"] == "rota.access":
                lines.append(entry)
    return lines


@pytest.mark.integration
def test_metrics_add_up_the_requests_every_worker_served(live_server):
    url, metrics = live_server.url("/api/v1/health/live"), live_server.url("/metrics")
    labels = dict(route="/api/v1/health/live", method="GET", status="200")
    before = sample(requests.get(metrics, timeout=10).text, "rota_http_requests_total", **labels)
    ids = [f"metrics-{uuid.uuid4().hex}" for _ in range(48)]

    def six_requests(thread: int) -> list[int]:
        return [requests.get(url, headers={"X-Request-ID": ids[thread * 6 + i]},
                             timeout=10).status_code for i in range(6)]

    assert parallel(8, six_requests) == [[200] * 6] * 8
    after = sample(requests.get(metrics, timeout=10).text, "rota_http_requests_total", **labels)
    assert after - before == 48
    served = access_lines(live_server.log_path, set(ids))
    assert len(served) == 48
    assert len({line["pid"] for line in served}) >= 2, "the requests reached several workers"
    gunicorn = [json.loads(text) for text in live_server.log_path.read_text().splitlines()
                if '"gunicorn.error"' in text]
    assert any(entry["message"].startswith("Booting worker") for entry in gunicorn)


@pytest.mark.integration
def test_the_ready_probe_answers_503_fast_with_the_database_paused_or_stopped(
        tmp_path, database_server):
    from api import create_app
    from scripts import embedded

    server = embedded.start(tmp_path / "db")
    client = create_app({"MONGODB_URI": server.uri + "probes", "JWT_SECRET_KEY": JWT,
                         "ROTA_ENV": "test"}).test_client()

    def timed(path):
        started = time.monotonic()
        response = client.get(path)
        return response.status_code, time.monotonic() - started

    try:
        assert timed("/api/v1/health/ready")[0] == 200
        os.kill(server.process.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:
            for path in ("/api/v1/health/ready", "/api/v1/health"):
                status, seconds = timed(path)
                assert (status, seconds < PROBE_DEADLINE) == (503, True), (path, seconds)
            status, seconds = timed("/api/v1/health/live")
            assert (status, seconds < 0.5) == (200, True)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert timed("/api/v1/health/ready")[0] == 200
        server.stop()
        status, seconds = timed("/api/v1/health/ready")
        assert (status, seconds < PROBE_DEADLINE) == (503, True), seconds
        assert timed("/api/v1/health/live")[0] == 200
    finally:
        server.stop()


@pytest.mark.integration
def test_parallel_posts_with_one_key_run_once(live):
    world = live.world
    headers = {**world.headers("admin"), "Idempotency-Key": f"race-{uuid.uuid4().hex}"}
    email = f"race-{uuid.uuid4().hex[:8]}@example.test"
    body = {"email": email, "name": "Race", "role": "staff"}

    def post(_):
        response = requests.post(live.url(world.url("/users")), json=body, headers=headers,
                                 timeout=30)
        return response.status_code, response.text, response.headers.get("Idempotent-Replayed")

    answers = parallel(8, post)
    created = [text for status, text, _ in answers if status == 201]
    in_use = [text for status, text, _ in answers if status == 409]
    assert len(created) + len(in_use) == 8
    assert len(created) >= 1 and len(set(created)) == 1
    assert [replayed for status, _, replayed in answers if status == 201].count(None) == 1
    assert {json.loads(text)["error"]["code"] for text in in_use} <= {"idempotency_key_in_use"}
    assert User.objects(email=email).count() == 1
    user_id = json.loads(created[0])["id"]
    assert AuditEvent.objects(school_id=world.school.id, action="create", entity_type="user",
                              entity_id=user_id).count() == 1
    retry = requests.post(live.url(world.url("/users")), json=body, headers=headers, timeout=30)
    assert (retry.status_code, retry.text) == (201, created[0])
