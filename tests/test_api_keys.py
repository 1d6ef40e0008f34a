"""Service accounts and API keys over HTTP: made and shown once, used as bearer tokens on
school routes with the tenant wall and audit of a school admin, rotated, revoked, expired,
read-only, rate limited per key; and the login throttle keyed by email and address."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

import pytest

from tests.helpers import PASSWORD

KEY_SHAPE = re.compile(r"^(rota_[0-9a-f]{8})_[A-Za-z0-9_-]{43}$")


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def make_account(client, world, role="school_admin", school=None, name="HR portal"):
    url = world.url("/service-accounts", school) if school is not False \
        else "/api/v1/service-accounts"
    response = client.post(url, json={"name": name, "role": role},
                           headers=world.headers("company_admin"))
    assert response.status_code == 201, response.json
    return response.json, url


def make_key(client, world, keys_url, **body):
    response = client.post(keys_url, json=body, headers=world.headers("company_admin"))
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def account(client, world):
    """A school admin service account of world.school and its keys URL."""
    body, url = make_account(client, world)
    return {**body, "keys_url": f"{url}/{body['id']}/keys"}


@pytest.fixture
def key(client, world, account):
    return make_key(client, world, account["keys_url"])["key"]


def test_a_key_is_shown_once_and_only_its_hash_is_stored(client, world, account):
    from documents.service_accounts import ApiKey

    created = make_key(client, world, account["keys_url"])
    match = KEY_SHAPE.match(created["key"])
    assert match and match.group(1) == created["prefix"]
    assert created["expires_at"] is None
    listing = client.get(account["keys_url"], headers=world.headers("company_admin"))
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json["items"]] == [created["id"]]
    assert set(listing.json["items"][0]) == {"id", "prefix", "expires_at", "revoked_at",
                                             "last_used_at", "created_at"}
    secret = created["key"].split("_", 2)[2]
    assert secret not in listing.get_data(as_text=True)
    stored = ApiKey.objects.get(id=created["id"]).to_mongo().to_dict()
    assert stored["key_hash"] == hashlib.sha256(created["key"].encode()).hexdigest()
    assert secret not in str(stored)


def test_a_key_acts_as_a_school_admin_and_its_changes_are_audited_under_the_account(
        client, world, account, key):
    users = client.get(world.url("/users"), headers=bearer(key))
    assert users.status_code == 200 and users.json["total"] >= 3
    created = client.post(world.url("/users"), headers=bearer(key), json={
        "email": "synced@example.test", "name": "Synced Teacher", "role": "staff"})
    assert created.status_code == 201, created.json
    trail = client.get(world.url(f"/audit?entity_type=user&entity_id={created.json['id']}"),
                       headers=world.headers("admin")).json["items"]
    assert [(e["action"], e["actor_id"], e["actor_role"], e["actor_name"]) for e in trail] == [
        ("create", account["id"], "service_account", "HR portal")]


def test_rotation_keeps_the_other_key_and_a_revoked_one_is_401_at_once(client, world,
                                                                       account):
    old = make_key(client, world, account["keys_url"])
    new = make_key(client, world, account["keys_url"])
    for live in (old, new):
        assert client.get(world.url("/users"), headers=bearer(live["key"])).status_code == 200
    revoked = client.delete(f"{account['keys_url']}/{old['id']}",
                            headers=world.headers("company_admin"))
    assert revoked.status_code == 204
    refused = client.get(world.url("/users"), headers=bearer(old["key"]))
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "unauthorized"
    assert client.get(world.url("/users"), headers=bearer(new["key"])).status_code == 200
    listed = {item["id"]: item for item in client.get(
        account["keys_url"], headers=world.headers("company_admin")).json["items"]}
    assert listed[old["id"]]["revoked_at"] and listed[new["id"]]["revoked_at"] is None
    again = client.delete(f"{account['keys_url']}/{old['id']}",
                          headers=world.headers("company_admin"))
    assert again.status_code == 204
    trail = client.get(world.url(f"/audit?action=revoke&entity_id={old['id']}"),
                       headers=world.headers("admin")).json
    assert trail["total"] == 1


def test_an_expired_key_is_401_and_a_past_expiry_is_refused(client, world, account):
    from documents.base import utcnow
    from documents.service_accounts import ApiKey

    soon = (datetime.utcnow() + timedelta(hours=1)).isoformat(timespec="seconds") + "Z"
    created = make_key(client, world, account["keys_url"], expires_at=soon)
    assert created["expires_at"] == soon
    assert client.get(world.url("/users"), headers=bearer(created["key"])).status_code == 200
    ApiKey.objects(id=created["id"]).update_one(set__expires_at=utcnow() - timedelta(seconds=1))
    expired = client.get(world.url("/users"), headers=bearer(created["key"]))
    assert expired.status_code == 401
    assert "expired" in expired.json["error"]["message"]
    past = client.post(account["keys_url"], json={"expires_at": "2020-01-01T00:00:00Z"},
                       headers=world.headers("company_admin"))
    assert past.status_code == 422 and "expires_at" in past.json["error"]["details"]


def test_a_read_only_key_reads_and_is_refused_on_writes(client, world):
    body, url = make_account(client, world, role="read_only", name="Reporting")
    key = make_key(client, world, f"{url}/{body['id']}/keys")["key"]
    assert client.get(world.url("/users"), headers=bearer(key)).status_code == 200
    refused = client.post(world.url("/users"), headers=bearer(key), json={
        "email": "nope@example.test", "name": "Nope", "role": "staff"})
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "read_only"
    from documents.accounts import User

    assert User.objects(email="nope@example.test").count() == 0


def test_a_key_outside_its_school_gets_404(client, world, key):
    for school in (world.other_school, world.foreign_school):
        response = client.get(world.url("/users", school), headers=bearer(key))
        assert response.status_code == 404, school
        assert response.json["error"]["code"] == "not_found"


def test_unknown_keys_get_401(client, world):
    for bad in ("rota_00000000_" + "x" * 43, "rota_"):
        response = client.get(world.url("/users"), headers=bearer(bad))
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"


def test_a_company_wide_account_is_a_school_admin_in_every_school_of_its_company(
        client, world):
    body, url = make_account(client, world, school=False, name="Group HR")
    assert body["school_id"] is None
    key = make_key(client, world, f"{url}/{body['id']}/keys")["key"]
    for school in (world.school, world.other_school):
        assert client.get(world.url("/users", school), headers=bearer(key)).status_code == 200
    assert client.get(world.url("/users", world.foreign_school),
                      headers=bearer(key)).status_code == 404
    schools = client.get("/api/v1/schools", headers=bearer(key)).json
    assert {s["id"] for s in schools["items"]} == {str(world.school.id),
                                                   str(world.other_school.id)}
    assert client.post("/api/v1/schools", json={"name": "New", "code": "NEW-1"},
                       headers=bearer(key)).status_code == 403
    assert client.put(f"/api/v1/schools/{world.school.id}/modules", json={"tracks": False},
                      headers=bearer(key)).status_code == 403
    assert client.post("/api/v1/service-accounts", json={"name": "x", "role": "read_only"},
                       headers=bearer(key)).status_code == 403
    assert client.get(world.url("/service-accounts"), headers=bearer(key)).status_code == 403


def test_only_company_admins_manage_accounts_and_only_in_their_scope(client, world, account):
    body = {"name": "Mine", "role": "read_only"}
    assert client.post(world.url("/service-accounts"), json=body,
                       headers=world.headers("admin")).status_code == 403
    assert client.post("/api/v1/service-accounts", json=body,
                       headers=world.headers("admin")).status_code == 403
    elsewhere = [world.url(f"/service-accounts/{account['id']}/keys", world.other_school),
                 f"/api/v1/service-accounts/{account['id']}/keys"]
    for url in elsewhere:
        response = client.post(url, json={}, headers=world.headers("company_admin"))
        assert response.status_code == 404, url
    foreign = client.get(account["keys_url"], headers=world.headers("foreign_company_admin"))
    assert foreign.status_code == 404
    listed = client.get(world.url("/service-accounts"), headers=world.headers("company_admin"))
    assert [a["id"] for a in listed.json["items"]] == [account["id"]]
    assert client.get("/api/v1/service-accounts",
                      headers=world.headers("company_admin")).json["total"] == 0
    duplicate = client.post(world.url("/service-accounts"), json={
        "name": "HR portal", "role": "read_only"}, headers=world.headers("company_admin"))
    assert duplicate.status_code == 409


@pytest.fixture
def mid_minute(monkeypatch):
    """A clock fixed in the middle of a minute: the requests of a test share one window."""
    import service.service_accounts

    now = datetime(2030, 5, 6, 7, 8, 30)
    monkeypatch.setattr(service.service_accounts, "utcnow", lambda: now)
    return now


def test_a_key_over_its_rate_limit_gets_429_with_ratelimit_headers(app, client, world, key,
                                                                    monkeypatch, mid_minute):
    from documents.service_accounts import ApiKeyWindow

    monkeypatch.setitem(app.config, "ROTA_API_KEY_RATE_LIMIT", 3)
    answers = [client.get(world.url("/users"), headers=bearer(key)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["RateLimit-Limit"] for a in answers} == {"3"}
    assert {a.headers["RateLimit-Reset"] for a in answers} == {"30"}
    assert answers[3].headers["Retry-After"] == "30"
    assert answers[3].json["error"]["code"] == "too_many_requests"
    # The count lives in the database, where every worker adds to it.
    assert [w.count for w in ApiKeyWindow.objects] == [4]
    assert "RateLimit-Limit" not in client.get(world.url("/users"),
                                               headers=world.headers("admin")).headers


def test_last_use_is_written_at_most_once_a_minute(client, world, account, key, monkeypatch,
                                                   roundtrips):
    import service.service_accounts

    first = datetime(2030, 5, 6, 7, 8, 10)
    clock = iter([first, first + timedelta(seconds=20), first + timedelta(seconds=61)])
    monkeypatch.setattr(service.service_accounts, "utcnow", lambda: next(clock))
    counts = []
    for _ in range(3):
        with roundtrips() as commands:
            assert client.get(world.url("/departments"), headers=bearer(key)).status_code == 200
        counts.append(len(commands))
    assert counts[0] == counts[2] == counts[1] + 1  # the second use, 20 s on, writes nothing
    listed = client.get(account["keys_url"], headers=world.headers("company_admin")).json
    assert listed["items"][0]["last_used_at"] == "2030-05-06T07:09:11Z"


def test_a_key_costs_at_most_one_round_trip_more_than_an_access_token(client, world, key,
                                                                       roundtrips):
    client.get(world.url("/departments"), headers=bearer(key))  # last use recorded
    with roundtrips() as with_token:
        client.get(world.url("/departments"), headers=world.headers("admin"))
    with roundtrips() as with_key:
        client.get(world.url("/departments"), headers=bearer(key))
    assert len(with_key) <= len(with_token) + 1


def login(client, email, password, address):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_a_strangers_failed_logins_do_not_lock_the_owner_out(client, world):
    owner = world.add_user(world.school, "staff", password=PASSWORD)
    stranger, home = "203.0.113.66", "198.51.100.7"
    tries = [login(client, owner.email, "guess", stranger).status_code for _ in range(6)]
    assert tries == [401] * 5 + [429]
    assert login(client, owner.email, PASSWORD, stranger).status_code == 429
    assert login(client, owner.email, "typo", home).status_code == 401
    assert login(client, owner.email, PASSWORD, home).status_code == 200
    assert login(client, owner.email, PASSWORD, stranger).status_code == 429


@pytest.mark.integration
def test_every_worker_counts_a_key_against_one_limit_and_sees_its_revocation(live):
    """Four gunicorn workers: the RateLimit-Remaining values of parallel requests are all
    different (one shared counter), and a revoked key is 401 on every worker at once."""
    import requests

    from tests.helpers import parallel

    world = live.world
    admin = world.headers("company_admin")
    account = requests.post(live.url(world.url("/service-accounts")), headers=admin,
                            json={"name": "Portal", "role": "school_admin"}).json()
    keys_url = live.url(world.url(f"/service-accounts/{account['id']}/keys"))
    created = requests.post(keys_url, headers=admin, json={}).json()
    users = live.url(world.url("/users"))
    answers = parallel(16, lambda _: requests.get(users, headers=bearer(created["key"])))
    assert [a.status_code for a in answers] == [200] * 16
    from documents.service_accounts import ApiKeyWindow

    windows = ApiKeyWindow.objects(id__startswith=f"{created['id']}:")
    assert sum(window.count for window in windows) == 16  # no increment lost
    remaining = [int(a.headers["RateLimit-Remaining"]) for a in answers]
    limit = int(answers[0].headers["RateLimit-Limit"])
    resets = [int(a.headers["RateLimit-Reset"]) for a in answers]
    if max(resets) - min(resets) <= 2:  # all in one minute (a new one restarts the count)
        assert sorted(remaining) == list(range(limit - 16, limit))
    assert requests.delete(f"{keys_url}/{created['id']}", headers=admin).status_code == 204
    after = parallel(16, lambda _: requests.get(users, headers=bearer(created["key"])))
    assert [a.status_code for a in after] == [401] * 16


def test_a_retry_with_the_same_idempotency_key_replays_the_keys_first_answer(client, world,
                                                                             key):
    from documents.accounts import User

    body = {"email": "once@example.test", "name": "Once", "role": "staff"}
    headers = {**bearer(key), "Idempotency-Key": "sync-2030-05-06-once"}
    first = client.post(world.url("/users"), json=body, headers=headers)
    again = client.post(world.url("/users"), json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["id"] == first.json["id"]
    assert User.objects(email="once@example.test").count() == 1


def test_auth_routes_refuse_a_key_with_a_clear_401(client, key):
    for method, path in (("GET", "/api/v1/auth/me"), ("POST", "/api/v1/auth/logout"),
                         ("POST", "/api/v1/auth/refresh")):
        response = client.open(path, method=method, headers=bearer(key))
        assert response.status_code == 401, path
        assert "API key" in response.json["error"]["message"], path


def test_behind_a_trusted_proxy_the_throttle_keys_on_the_forwarded_address(database_uri,
                                                                           world):
    from api import create_app
    from tests.conftest import JWT_SECRET

    proxied = create_app({"MONGODB_URI": database_uri, "JWT_SECRET_KEY": JWT_SECRET,
                          "TESTING": True, "ROTA_ENV": "test", "ROTA_CREATE_INDEXES": False,
                          "ROTA_TRUSTED_PROXIES": 1}).test_client()
    owner = world.add_user(world.school, "staff", password=PASSWORD)

    def via_proxy(password, client_address):
        return proxied.post("/api/v1/auth/login", json={"email": owner.email,
                                                        "password": password},
                            headers={"X-Forwarded-For": client_address},
                            environ_base={"REMOTE_ADDR": "10.0.0.2"})

    tries = [via_proxy("guess", "203.0.113.66").status_code for _ in range(6)]
    assert tries == [401] * 5 + [429]
    assert via_proxy(PASSWORD, "198.51.100.7").status_code == 200


def test_the_rate_limit_setting_is_checked(monkeypatch):
    from api import config

    monkeypatch.setenv("ROTA_API_KEY_RATE_LIMIT", "120")
    assert config.api_key_rate_limit() == 120
    for wrong in ("0", "-5", "lots"):
        monkeypatch.setenv("ROTA_API_KEY_RATE_LIMIT", wrong)
        with pytest.raises(config.ConfigError, match="ROTA_API_KEY_RATE_LIMIT"):
            config.validate()
