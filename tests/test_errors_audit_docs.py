"""Error bodies, audit events, notifications, OpenAPI and the docs page, health."""

from __future__ import annotations

import re

import pytest

ERROR_KEYS = {"code", "message", "details"}


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert set(response.json) == {"error"}
    assert set(response.json["error"]) == ERROR_KEYS
    if code:
        assert response.json["error"]["code"] == code


def test_unparseable_json_is_400(client, world):
    response = client.post(world.url("/users"), data="{not json",
                           content_type="application/json", headers=world.headers("admin"))
    assert_error(response, 400, "bad_request")


def test_json_that_is_not_an_object_is_400(client, world):
    response = client.post(world.url("/users"), json=["a", "list"],
                           headers=world.headers("admin"))
    assert_error(response, 400, "bad_request")


def test_validation_errors_are_422_naming_fields(client, world):
    response = client.post(world.url("/users"), json={"email": "nope", "role": "wizard"},
                           headers=world.headers("admin"))
    assert_error(response, 422, "validation_error")
    assert set(response.json["error"]["details"]) >= {"email", "name", "role"}


def test_unknown_route_is_404_json(client):
    assert_error(client.get("/api/v1/no/such/thing"), 404, "not_found")
    assert_error(client.get("/"), 404, "not_found")


def test_wrong_method_is_405_json(client):
    assert_error(client.delete("/api/v1/health"), 405, "method_not_allowed")


def test_unexpected_errors_are_500_json_without_a_trace(app, client, world, monkeypatch):
    from service import schools

    def explode(self, *args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(schools.SchoolUsers, "departments", explode)
    response = client.get(world.url("/departments"), headers=world.headers("admin"))
    assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.synthetic_failure
def test_unanticipated_unique_violations_are_409_not_500(client, world, monkeypatch):
    failure = "E11000 duplicate key error collection: rota.x index: y"
    from mongoengine.errors import OperationError

    from service import schools

    def collide(self, *args, **kwargs):
        raise OperationError(failure)

    monkeypatch.setattr(schools.SchoolUsers, "departments", collide)
    response = client.get(world.url("/departments"), headers=world.headers("admin"))
    assert_error(response, 409, "duplicate")


def test_every_mutation_is_audited(client, world):
    admin = world.headers("company_admin")
    school = client.post("/api/v1/schools", json={"name": "Audited", "code": "AUD-1"},
                         headers=admin).json
    client.put(f"/api/v1/schools/{school['id']}/modules", json={"timetable": True},
               headers=admin)
    client.post(f"/api/v1/schools/{school['id']}/users",
                json={"email": "new@example.test", "name": "New", "role": "staff"}, headers=admin)
    trail = client.get(f"/api/v1/schools/{school['id']}/audit", headers=admin).json
    assert [e["action"] for e in trail["items"]] == ["create", "set_modules", "create"][::-1]
    switch = trail["items"][1]
    assert switch["entity_type"] == "school"
    assert switch["before"]["timetable"] is False and switch["after"]["timetable"] is True
    assert switch["actor_id"] == str(world.company_admin.id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", switch["created_at"])
    only_users = client.get(f"/api/v1/schools/{school['id']}/audit?entity_type=user",
                            headers=admin).json
    assert only_users["total"] == 1


def test_audit_is_for_admins(client, world):
    assert client.get(world.url("/audit"), headers=world.headers("staff")).status_code == 403


def test_notifications_are_the_callers_own_and_can_be_read(client, world):
    from service.notifications import notify

    note = notify(world.staff.id, "info", "Hello", school_id=world.school.id)
    notify(world.staff2.id, "info", "Not yours", school_id=world.school.id)
    headers = world.headers("staff")
    unread = client.get("/api/v1/notifications?unread=true", headers=headers).json
    assert [n["message"] for n in unread["items"]] == ["Hello"]
    other = client.post(f"/api/v1/notifications/{note.id}/read",
                        headers=world.headers("staff2"))
    assert other.status_code == 404
    read = client.post(f"/api/v1/notifications/{note.id}/read", headers=headers)
    assert read.status_code == 200 and read.json["read_at"]
    assert client.get("/api/v1/notifications?unread=true", headers=headers).json["total"] == 0
    again = client.post(f"/api/v1/notifications/{note.id}/read", headers=headers)
    assert again.json["read_at"] == read.json["read_at"]
    trail = client.get(world.url(f"/audit?entity_type=notification&entity_id={note.id}"),
                       headers=world.headers("admin")).json
    assert [(e["action"], e["actor_id"]) for e in trail["items"]] == [
        ("mark_read", str(world.staff.id))]


def test_openapi_spec_lists_every_route(app, client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = set(spec["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and "openapi" not in rule.rule \
                and not rule.rule.startswith("/api/v1/docs"):
            assert re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) in documented, rule.rule


def test_docs_page_loads_its_assets_from_the_service(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/api/v1/docs/assets/"), asset  # no CDN
        assert client.get(asset).status_code == 200


def test_health(client):
    assert client.get("/api/v1/health").json == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs"])
def test_public_routes_need_no_token(client, path):
    assert client.get(path).status_code == 200
