"""CORS: only the origins in ROTA_CORS_ORIGINS get CORS headers, preflights of /api/v1 are
answered without credentials, and browser clients may read the headers they need."""

from __future__ import annotations

import pytest

PORTAL = "https://portal.example.com"


@pytest.fixture
def cors_client(database_uri):
    """An app of its own with one allowed origin (CORS is set up when the app is made)."""
    from api import create_app
    from documents.connection import disconnect
    from tests.conftest import JWT_SECRET

    app = create_app({"MONGODB_URI": database_uri, "JWT_SECRET_KEY": JWT_SECRET,
                      "TESTING": True, "ROTA_ENV": "test", "ROTA_CREATE_INDEXES": False,
                      "ROTA_CORS_ORIGINS": [PORTAL]})
    yield app.test_client()
    disconnect()


def preflight(client, origin, path="/api/v1/schools/0123456789abcdef01234567/users"):
    return client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key"})


def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(cors_client):
    response = preflight(cors_client, PORTAL)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= set(allowed.split(", "))
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_client):
    response = preflight(cors_client, "https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


def test_answers_to_an_allowed_origin_expose_the_headers_clients_read(cors_client):
    response = cors_client.get("/api/v1/health/live", headers={"Origin": PORTAL})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "ETag", "Location", "Retry-After", "RateLimit-Limit",
            "RateLimit-Remaining", "RateLimit-Reset"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_without_configured_origins_there_are_no_cors_headers(client):
    response = preflight(client, PORTAL)
    assert "Access-Control-Allow-Origin" not in response.headers
    plain = client.get("/api/v1/health/live", headers={"Origin": PORTAL})
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_cors_origins_are_read_and_checked_from_the_environment(monkeypatch):
    from api import config

    monkeypatch.setenv("ROTA_CORS_ORIGINS", f" {PORTAL}/ , http://localhost:5173")
    assert config.cors_origins() == [PORTAL, "http://localhost:5173"]
    monkeypatch.setenv("ROTA_CORS_ORIGINS", "portal.example.com")
    with pytest.raises(config.ConfigError, match="ROTA_CORS_ORIGINS"):
        config.validate()
    monkeypatch.delenv("ROTA_CORS_ORIGINS")
    assert config.cors_origins() == []
