"""An operable service: request ids, JSON logs, /metrics, probes, configuration checked at
start, argon2id passwords, CSV cells a spreadsheet will not run, Idempotency-Key on POSTs."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from documents.accounts import User
from documents.audit import AuditEvent
from service.csv_cells import neutralised, restored

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- request ids

def test_a_sane_request_id_is_echoed_and_named_in_the_error_body(client):
    response = client.get("/no/such/route", headers={"X-Request-ID": "portal-42.a:b"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "portal-42.a:b"
    assert response.json["error"]["details"] == {"request_id": "portal-42.a:b"}


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 129, "quote\"d", "semi;colon",
                                  "ünicode"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(client, sent):
    headers = {"X-Request-ID": sent} if sent else {}
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 401
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.json["error"]["details"]["request_id"] == generated


def test_successful_answers_carry_the_request_id_too(client, world):
    response = client.get(world.url("/users"), headers={**world.headers("admin"),
                                                        "X-Request-ID": "ok-1"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "ok-1"


def test_the_access_line_is_one_json_object_with_the_request_facts(client, world):
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    from api.logs import JsonFormatter

    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("rota.access")
    access.addHandler(handler)
    try:
        client.get(world.url("/users"), headers={**world.headers("admin"),
                                                 "X-Request-ID": "line-1"})
    finally:
        access.removeHandler(handler)
    [line] = lines.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["request_id"] == "line-1"
    assert entry["user_id"] == str(world.admin.id)
    assert entry["school_id"] == str(world.school.id)
    assert (entry["route"], entry["method"], entry["status"]) == (
        "/api/v1/schools/<school_id>/users", "GET", 200)
    assert entry["db_round_trips"] >= 2  # the token's revocation check and the school
    assert entry["latency_ms"] >= 0 and entry["level"] == "INFO" and entry["time"]


def test_every_log_line_of_a_request_has_its_id(client, caplog, monkeypatch):
    def broken():
        logging.getLogger("rota.test").warning("about to fail")
        raise RuntimeError("boom")

    monkeypatch.setattr("api.health.database_reachable", broken)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/v1/health", headers={"X-Request-ID": "trace-7"})
    assert response.status_code == 500
    assert response.json["error"]["details"]["request_id"] == "trace-7"
    mine = [r for r in caplog.records if r.name in ("rota.test", "api.errors", "rota.access")]
    assert [r.name for r in mine] == ["rota.test", "api.errors", "rota.access"]
    assert {r.request_id for r in mine} == {"trace-7"}


# ---------------------------------------------------------------------------- metrics

def sample(text: str, name: str, **labels) -> float:
    """The value of one sample of the Prometheus text, 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found = line[len(name) + 1:line.index("}")]
            if sorted(found.split(",")) == sorted(wanted.split(",")):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_template_method_and_status(client, world):
    before = client.get("/metrics").data.decode()
    for _ in range(3):
        client.get(world.url("/users"), headers=world.headers("admin"))
    client.get("/no/such/route")
    after = client.get("/metrics")
    assert after.status_code == 200 and after.mimetype == "text/plain"
    text = after.data.decode()
    labels = dict(route="/api/v1/schools/<school_id>/users", method="GET", status="200")
    assert sample(text, "rota_http_requests_total", **labels) - sample(
        before, "rota_http_requests_total", **labels) == 3
    unmatched = dict(route="unmatched", method="GET", status="404")
    assert sample(text, "rota_http_requests_total", **unmatched) - sample(
        before, "rota_http_requests_total", **unmatched) == 1
    assert sample(text, "rota_http_request_duration_seconds_count",
                  route="/api/v1/schools/<school_id>/users") >= 3
    assert sample(text, "rota_db_round_trips_sum", route="/api/v1/schools/<school_id>/users") > 0


def test_metrics_need_the_metrics_token_when_one_is_set(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "ROTA_METRICS_TOKEN", "m" * 20)
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + "n" * 20})
    assert wrong.status_code == 401 and wrong.json["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 20}
                      ).status_code == 200


# ---------------------------------------------------------------------------- probes

def test_the_liveness_probe_never_asks_the_database(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise AssertionError("the liveness probe asked the database")

    monkeypatch.setattr("service.health.get_db", unreachable)
    assert client.get("/api/v1/health/live").json == {"status": "ok"}
    assert client.get("/api/v1/health/ready").status_code == 500  # it does ask


def test_the_readiness_probe_says_ready_with_the_database_up(client):
    response = client.get("/api/v1/health/ready")
    assert (response.status_code, response.json) == (200, {"status": "ok", "database": "ok"})


# ---------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("name, value", [
    ("ROTA_ACCESS_TOKEN_MINUTES", "abc"), ("ROTA_ACCESS_TOKEN_MINUTES", "0"),
    ("ROTA_ENV", "staging"), ("ROTA_CREATE_INDEXES", "yes"), ("ROTA_JWT_SECRET", "short"),
    ("ROTA_METRICS_TOKEN", "tiny"), ("ROTA_LOG_LEVEL", "loud"), ("MONGODB_URI", "http://db"),
])
def test_each_variable_is_checked_and_named(monkeypatch, name, value):
    from api import config

    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError, match=name):
        config.validate()


def test_a_var_dir_that_is_a_file_is_refused(monkeypatch, tmp_path):
    from api import config

    monkeypatch.setenv("ROTA_VAR_DIR", str(tmp_path / "file"))
    (tmp_path / "file").write_text("")
    with pytest.raises(config.ConfigError, match="ROTA_VAR_DIR"):
        config.validate()


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "scripts.cli", "serve"],
    [sys.executable, "-m", "gunicorn", "--config", "python:scripts.gunicorn_config",
     "--bind", "127.0.0.1:0", "api:create_app()"],
], ids=["rota serve", "gunicorn"])
def test_a_wrong_variable_stops_the_start_with_one_line_and_exit_code_2(tmp_path, command):
    env = {**os.environ, "ROTA_ACCESS_TOKEN_MINUTES": "abc", "ROTA_VAR_DIR": str(tmp_path)}
    env.pop("MONGODB_URI", None)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "ROTA_" in line]
    assert errors == [next(line for line in errors)]
    assert "ROTA_ACCESS_TOKEN_MINUTES must be a whole number of minutes" in errors[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "db").exists(), "nothing started"


# ---------------------------------------------------------------------------- passwords

def scrypt_hash(password: str) -> str:
    """A hash as older versions stored them."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    encode = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"scrypt$16384$8$1${encode(salt)}${encode(digest)}"


def login(client, email, password):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_new_passwords_are_argon2id_at_owasp_parameters():
    from service.passwords import hash_password, needs_rehash, verify_password

    stored = hash_password("a-long-password")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("a-long-password", stored)
    assert not verify_password("another-password", stored)
    assert not needs_rehash(stored)


def test_a_scrypt_hash_verifies_and_becomes_argon2id_at_the_next_login(client, world):
    user = world.staff
    legacy = scrypt_hash("old-scheme-password")
    User.objects(id=user.id).update_one(set__password_hash=legacy)
    assert login(client, user.email, "wrong-password").status_code == 401
    assert User.objects.get(id=user.id).password_hash == legacy, "no upgrade on a failure"
    assert login(client, user.email, "old-scheme-password").status_code == 200
    upgraded = User.objects.get(id=user.id).password_hash
    assert upgraded.startswith("$argon2id$")
    assert login(client, user.email, "old-scheme-password").status_code == 200
    assert login(client, user.email, "wrong-password").status_code == 401
    assert User.objects.get(id=user.id).password_hash == upgraded


def test_an_unknown_email_costs_one_hash_verification_like_a_known_one(client, world,
                                                                      monkeypatch):
    from service import passwords

    verified = []
    real = passwords._verify_argon2
    monkeypatch.setattr(passwords, "_verify_argon2",
                        lambda password, stored: verified.append(stored) or real(password,
                                                                                 stored))
    assert login(client, "nobody@example.test", "whatever-password").status_code == 401
    assert login(client, world.staff.email, "whatever-password").status_code == 401
    assert len(verified) == 2
    assert all(stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for stored in verified)


# ---------------------------------------------------------------------------- CSV cells

@pytest.mark.parametrize("value, cell", [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("+1", "'+1"), ("-5", "'-5"), ("@cmd", "'@cmd"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("'=x", "''=x"), ("O'Brien", "O'Brien"),
    ("'quoted", "'quoted"), ("a=b", "a=b"), ("", ""), (None, ""), (-3, "'-3"), (7, "7"),
])
def test_cells_starting_like_a_formula_get_a_quote(value, cell):
    assert neutralised(value) == cell


@given(st.text())
def test_the_import_reads_every_neutralised_value_back_as_it_was(value):
    assert restored(neutralised(value)) == value


def test_an_export_with_bom_and_neutralised_cells_imports_back_to_no_change(world, tmp_path):
    from scripts.importer import run_export
    from tests.test_import_support import run, write_csv

    rows = [{"email": "f1@hr.test", "name": "=HYPERLINK(\"http://x\")", "role": "staff",
             "external_id": "-17", "department": "+Maths"},
            {"email": "f2@hr.test", "name": "@SUM(1)", "role": "student",
             "external_id": "E2", "department": "Science"}]
    header = ("email", "name", "role", "external_id", "department")
    assert run("users", write_csv(tmp_path / "in.csv", header, rows), world.school).code == 0
    # A value that really starts with a quote (typed in through the API) gets one more.
    User.objects(email="f2@hr.test").update_one(set__external_id="'=quoted")
    exported = tmp_path / "out.csv"
    assert run_export("users", world.school.code, exported, bom=True) == 0
    raw = exported.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    cells = {row["email"]: row for row in csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))}
    assert cells["f1@hr.test"]["name"] == "'=HYPERLINK(\"http://x\")"
    assert (cells["f1@hr.test"]["external_id"], cells["f1@hr.test"]["department"]) == (
        "'-17", "'+Maths")
    assert (cells["f2@hr.test"]["name"], cells["f2@hr.test"]["external_id"]) == (
        "'@SUM(1)", "''=quoted")
    again = run("users", exported, world.school)
    assert again.code == 0
    assert [again.count(status) for status in ("created", "updated", "rejected")] == [0, 0, 0]
    assert again.count("unchanged") >= 2
    stored = User.objects.get(email="f2@hr.test")
    assert (stored.name, stored.external_id) == ("@SUM(1)", "'=quoted")
    assert User.objects.get(email="f1@hr.test").external_id == "-17"


def test_http_csv_exports_start_with_a_bom_on_request(client, world):
    url, headers = world.url("/timetable/export.csv"), world.headers("admin")
    plain = client.get(url, headers=headers)
    with_bom = client.get(url + "?bom=true", headers=headers)
    assert plain.status_code == with_bom.status_code == 200
    assert not plain.data.startswith(b"\xef\xbb\xbf")
    assert with_bom.data == b"\xef\xbb\xbf" + plain.data


# ---------------------------------------------------------------------------- idempotency

def create_user(client, world, key, email="idem@example.test", caller="admin", name="Idem"):
    headers = {**world.headers(caller), "Idempotency-Key": key}
    return client.post(world.url("/users"), headers=headers,
                       json={"email": email, "name": name, "role": "staff"})


def user_created_events(world):
    return AuditEvent.objects(school_id=world.school.id, action="create", entity_type="user")


def test_a_retried_post_gets_the_first_response_and_runs_once(client, world):
    first = create_user(client, world, "key-1")
    again = create_user(client, world, "key-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert user_created_events(world).count() == 1
    assert User.objects(email="idem@example.test").count() == 1


def test_the_same_key_with_another_body_is_422_idempotency_key_reused(client, world):
    assert create_user(client, world, "key-2").status_code == 201
    other = create_user(client, world, "key-2", email="other@example.test")
    assert other.status_code == 422
    assert other.json["error"]["code"] == "idempotency_key_reused"
    assert User.objects(email="other@example.test").count() == 0


def test_keys_belong_to_their_caller(client, world):
    assert create_user(client, world, "shared-key").status_code == 201
    theirs = create_user(client, world, "shared-key", caller="company_admin")
    assert theirs.status_code == 409 and theirs.json["error"]["code"] == "duplicate"
    assert "Idempotent-Replayed" not in theirs.headers


def test_a_4xx_is_kept_and_replayed_a_5xx_is_not(client, world, monkeypatch):
    create_user(client, world, "first")
    duplicate = create_user(client, world, "dup")
    User.objects(email="idem@example.test").delete()
    replayed = create_user(client, world, "dup")
    assert duplicate.status_code == replayed.status_code == 409
    assert replayed.data == duplicate.data

    from service.schools import SchoolUsers

    real = SchoolUsers.create
    monkeypatch.setattr(SchoolUsers, "create", lambda *a, **k: 1 / 0)
    failed = create_user(client, world, "flaky", email="flaky@example.test")
    assert failed.status_code == 500
    monkeypatch.setattr(SchoolUsers, "create", real)
    retried = create_user(client, world, "flaky", email="flaky@example.test")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


def test_a_key_still_running_is_409_in_use_and_an_abandoned_one_is_taken_over(client, world):
    from datetime import timedelta

    from documents.base import utcnow
    from documents.idempotency import IdempotencyRecord
    from service.idempotency import fingerprint

    body = json.dumps({"email": "idem@example.test", "name": "Idem", "role": "staff"}).encode()
    running = IdempotencyRecord(
        id=f"{world.admin.id}/busy", state="in_progress",
        fingerprint=fingerprint("POST", world.url("/users") + "?", body),
        expires_at=utcnow() + timedelta(minutes=2)).save(force_insert=True)
    busy = create_user(client, world, "busy")
    assert busy.status_code == 409 and busy.json["error"]["code"] == "idempotency_key_in_use"
    assert User.objects(email="idem@example.test").count() == 0
    running.update(set__expires_at=utcnow() - timedelta(seconds=1))
    assert create_user(client, world, "busy").status_code == 201
    assert user_created_events(world).count() == 1


@pytest.mark.parametrize("key", ["", "with space", "k" * 256, "naïve"])
def test_a_malformed_key_is_400(client, world, key):
    response = create_user(client, world, key)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_idempotency_key"
    assert User.objects(email="idem@example.test").count() == 0


def test_a_key_without_a_token_is_ignored(client, world):
    response = client.post("/api/v1/auth/login", headers={"Idempotency-Key": "login"},
                           json={"email": "nobody@example.test", "password": "x"})
    assert response.status_code == 401
    from documents.idempotency import IdempotencyRecord

    assert IdempotencyRecord.objects.count() == 0


def test_a_key_with_a_bad_token_leaves_the_answer_to_the_route(client, world):
    response = client.post(world.url("/users"), json={"email": "x@example.test", "name": "X",
                                                      "role": "staff"},
                           headers={"Authorization": "Bearer not-a-jwt", "Idempotency-Key": "k"})
    assert response.status_code == 401
    from documents.idempotency import IdempotencyRecord

    assert IdempotencyRecord.objects.count() == 0


def test_made_up_methods_share_one_metrics_label(client):
    before = client.get("/metrics").data.decode()
    assert client.open("/api/v1/health/live", method="BREW").status_code == 405
    after = client.get("/metrics").data.decode()
    labels = dict(route="unmatched", method="other", status="405")
    assert sample(after, "rota_http_requests_total", **labels) - sample(
        before, "rota_http_requests_total", **labels) == 1
    assert 'method="BREW"' not in after


def test_the_timetable_csv_export_neutralises_formula_cells(client, world):
    headers = world.headers("admin")
    period = client.post(world.url("/timetable/periods"), headers=headers, json={
        "period_number": 1, "period_name": "First", "start_time": "08:00",
        "end_time": "08:45"}).json
    assigned = client.post(world.url("/timetable/assignments"), headers=headers, json={
        "staff_id": str(world.staff.id), "period_id": period["id"], "day_of_week": 0,
        "classes": [{"class_id": "-5A", "subject": "=HYPERLINK(\"http://x\")",
                     "room_number": "@Lab"}]})
    assert assigned.status_code == 201, assigned.json
    exported = client.get(world.url("/timetable/export.csv"), headers=headers)
    [row] = csv.DictReader(io.StringIO(exported.data.decode()))
    assert (row["class_id"], row["subject"], row["room_number"]) == (
        "'-5A", "'=HYPERLINK(\"http://x\")", "'@Lab")
    assert row["period_number"] == "1"
