"""Sign in, refresh, sign out and revocation; the same 401 for unknown email and bad password."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import PASSWORD, parallel


@pytest.fixture
def teacher(world):
    return world.add_user(world.school, "staff", department="Art", password=PASSWORD)


def login(client, email, password=PASSWORD):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_login_returns_tokens_and_the_user(client, teacher):
    response = login(client, teacher.email.upper())
    assert response.status_code == 200
    body = response.json
    assert body["user"]["email"] == teacher.email
    assert body["user"]["role"] == "staff"
    assert body["user"]["school_id"] == str(teacher.school_id)
    assert "password" not in str(body["user"])
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json["id"] == str(teacher.id)


def test_unknown_email_and_wrong_password_get_the_same_401(client, teacher):
    wrong = login(client, teacher.email, "not-the-password")
    unknown = login(client, "nobody@example.test")
    assert wrong.status_code == unknown.status_code == 401
    bodies = [wrong.json, unknown.json]
    for body in bodies:  # each response has its own request id, otherwise nothing differs
        body["error"]["details"].pop("request_id")
    assert bodies[0] == bodies[1]
    assert wrong.json["error"]["code"] == "bad_credentials"


def test_passwords_are_stored_hashed(teacher):
    assert PASSWORD not in teacher.password_hash
    assert teacher.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_refresh_gives_a_new_access_token_and_access_tokens_cannot_refresh(client, teacher):
    tokens = login(client, teacher.email).json
    refreshed = client.post("/api/v1/auth/refresh",
                            headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert refreshed.status_code == 200
    me = client.get("/api/v1/auth/me",
                    headers={"Authorization": f"Bearer {refreshed.json['access_token']}"})
    assert me.status_code == 200
    misuse = client.post("/api/v1/auth/refresh",
                         headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert misuse.status_code == 401


def test_logout_revokes_the_token(client, teacher):
    tokens = login(client, teacher.email).json
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    after = client.get("/api/v1/auth/me", headers=headers)
    assert after.status_code == 401
    assert after.json["error"]["code"] == "unauthorized"
    assert "revoked" in after.json["error"]["message"]
    from documents.audit import AuditEvent

    assert AuditEvent.objects(action="logout", actor_id=teacher.id).count() == 1


def test_production_refuses_to_start_without_a_secret(monkeypatch):
    from api import config

    monkeypatch.delenv("ROTA_JWT_SECRET", raising=False)
    with pytest.raises(config.ConfigError, match="ROTA_JWT_SECRET"):
        config.load({"ROTA_ENV": "production"})
    monkeypatch.setenv("ROTA_JWT_SECRET", "s" * 48)
    assert config.load({"ROTA_ENV": "production"})["JWT_SECRET_KEY"] == "s" * 48


def test_development_generates_one_secret_and_keeps_it(monkeypatch, tmp_path):
    from api import config

    monkeypatch.delenv("ROTA_JWT_SECRET", raising=False)
    monkeypatch.setenv("ROTA_VAR_DIR", str(tmp_path))
    first = config.load({"ROTA_ENV": "development"})["JWT_SECRET_KEY"]
    assert len(first) >= 32
    assert config.load({"ROTA_ENV": "development"})["JWT_SECRET_KEY"] == first
    assert (tmp_path / "jwt_secret").read_text().strip() == first


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc"])
def test_missing_or_bad_tokens_get_401_json(client, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 401
    assert set(response.json["error"]) == {"code", "message", "details"}


def test_expired_token_gets_401(app, client, teacher):
    from datetime import timedelta

    from flask_jwt_extended import create_access_token

    token = create_access_token(str(teacher.id), expires_delta=timedelta(seconds=-1),
                                additional_claims={"role": "staff", "company_id": None,
                                                   "school_id": str(teacher.school_id)})
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json["error"]["message"]


def test_repeated_bad_logins_are_refused_with_429_and_retry_after(client, teacher):
    statuses = [login(client, teacher.email, "wrong-password").status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    blocked = login(client, teacher.email)  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json["error"]["code"] == "too_many_requests"


def test_failed_logins_on_an_account_show_in_its_schools_trail(client, world, teacher):
    login(client, teacher.email, "wrong-password")
    login(client, "nobody@example.test", "wrong-password")
    trail = client.get(world.url("/audit?action=login_failed"),
                       headers=world.headers("admin")).json
    assert [(e["entity_id"], e["actor_role"], e["actor_id"]) for e in trail["items"]] == [
        (str(teacher.id), "anonymous", None)]


def test_the_block_lifts_a_minute_after_the_latest_failure(client, teacher):
    from datetime import timedelta

    from documents.accounts import LoginFailure

    for _ in range(5):
        login(client, teacher.email, "wrong-password")
    assert login(client, teacher.email).status_code == 429
    for failure in LoginFailure.objects(email=teacher.email):
        failure.update(set__created_at=failure.created_at - timedelta(minutes=2))
    assert login(client, teacher.email).status_code == 200  # and success clears the count
    assert LoginFailure.objects(email=teacher.email).count() == 0


@pytest.mark.integration
def test_parallel_bad_logins_on_every_worker_all_count(live):
    """The throttle is shared through the database and loses no failure to a race."""
    world = live.world
    teacher = world.add_user(world.school, "staff", password=PASSWORD)
    body = {"email": teacher.email, "password": "wrong-password"}
    responses = parallel(12, lambda _: requests.post(live.url("/api/v1/auth/login"), json=body))
    assert {r.status_code for r in responses} <= {401, 429}
    blocked = requests.post(live.url("/api/v1/auth/login"),
                            json={"email": teacher.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1


@pytest.mark.integration
def test_logout_is_seen_by_every_worker(live):
    world = live.world
    teacher = world.add_user(world.school, "staff", password=PASSWORD)
    tokens = requests.post(live.url("/api/v1/auth/login"),
                           json={"email": teacher.email, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    before = parallel(8, lambda _: requests.get(live.url("/api/v1/auth/me"), headers=headers))
    assert [r.status_code for r in before] == [200] * 8
    assert requests.post(live.url("/api/v1/auth/logout"), headers=headers).status_code == 204
    after = parallel(16, lambda _: requests.get(live.url("/api/v1/auth/me"), headers=headers))
    assert [r.status_code for r in after] == [401] * 16
