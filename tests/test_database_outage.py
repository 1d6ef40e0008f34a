"""When the database goes away: quick 503 JSON, and recovery without a restart."""

from __future__ import annotations

import time

import pytest

JWT = "outage-secret-" + "y" * 40


@pytest.mark.integration
def test_503_while_the_database_is_down_and_recovery_after(tmp_path, database_server):
    from api import create_app
    from scripts import embedded
    from tests.helpers import World

    server = embedded.start(tmp_path / "db")
    app = create_app({"MONGODB_URI": server.uri + "outage", "JWT_SECRET_KEY": JWT,
                      "ROTA_ENV": "test"})
    client = app.test_client()
    with app.app_context():
        world = World.build(app)
        headers = world.headers("admin")
    assert client.get(world.url("/users"), headers=headers).status_code == 200

    server.stop()
    started = time.monotonic()
    down = client.get(world.url("/users"), headers=headers)
    assert time.monotonic() - started < 10
    assert down.status_code == 503
    assert down.json["error"]["code"] == "database_unavailable"
    health = client.get("/api/v1/health")
    assert health.status_code == 503 and health.json["database"] == "unreachable"

    server = embedded.start(tmp_path / "db", port=server.port)
    try:
        recovered = client.get(world.url("/users"), headers=headers)
        assert recovered.status_code == 200
        assert recovered.json["total"] >= 1
        assert client.get("/api/v1/health").json["database"] == "ok"
    finally:
        server.stop()
