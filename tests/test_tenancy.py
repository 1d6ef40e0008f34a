"""Schools, module switches, people and the tenant wall."""

from __future__ import annotations

import pytest

from tests.helpers import unique


def test_company_admin_creates_a_school_with_every_module_off(client, world):
    response = client.post("/api/v1/schools", json={"name": "East", "code": unique("E")},
                           headers=world.headers("company_admin"))
    assert response.status_code == 201
    assert response.json["modules"] == {"timetable": False, "weekly_groups": False,
                                        "tracks": False, "team_rosters": False}
    assert response.json["company_id"] == str(world.company.id)


def test_school_code_is_unique(client, world):
    body = {"name": "Twin", "code": world.school.code}
    response = client.post("/api/v1/schools", json=body, headers=world.headers("company_admin"))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "duplicate"


@pytest.mark.parametrize("role", ["admin", "staff", "student"])
def test_only_company_admins_create_schools(client, world, role):
    response = client.post("/api/v1/schools", json={"name": "X", "code": unique("X")},
                           headers=world.headers(role))
    assert response.status_code == 403


def test_school_list_is_scoped(client, world):
    mine = client.get("/api/v1/schools", headers=world.headers("company_admin")).json
    assert {s["id"] for s in mine["items"]} == {str(world.school.id), str(world.other_school.id)}
    assert mine["total"] == 2
    own = client.get("/api/v1/schools", headers=world.headers("admin")).json
    assert [s["id"] for s in own["items"]] == [str(world.school.id)]


@pytest.mark.parametrize("caller,school_attr", [
    ("admin", "other_school"),                 # school admin of A asks for B
    ("foreign_company_admin", "school"),       # another company's admin
    ("foreign_admin", "school"),
    ("other_staff", "school"),
])
def test_another_school_is_404_never_data(client, world, caller, school_attr):
    school = getattr(world, school_attr)
    for path in ("", "/users", "/departments", "/audit"):
        response = client.get(world.url(path, school), headers=world.headers(caller))
        assert response.status_code == 404, path
        assert response.json["error"]["code"] == "not_found"
        assert school.name not in response.get_data(as_text=True)


def test_unknown_and_malformed_school_ids_are_404(client, world):
    headers = world.headers("company_admin")
    assert client.get("/api/v1/schools/000000000000000000000000", headers=headers).status_code \
        == 404
    assert client.get("/api/v1/schools/not-an-id/users", headers=headers).status_code == 404


def test_modules_switch_is_for_company_admins_only(client, world):
    url = world.url("/modules")
    assert client.put(url, json={"tracks": False}, headers=world.headers("admin")).status_code \
        == 403
    response = client.put(url, json={"tracks": False}, headers=world.headers("company_admin"))
    assert response.status_code == 200
    assert response.json["modules"]["tracks"] is False
    assert response.json["modules"]["timetable"] is True  # untouched switches stay


def test_foreign_company_admin_cannot_switch_modules(client, world):
    response = client.put(world.url("/modules"), json={"tracks": False},
                          headers=world.headers("foreign_company_admin"))
    assert response.status_code == 404


def test_a_switched_off_module_answers_403_module_disabled(database_uri):
    """Every route of a module goes through the tenancy check with its module name."""
    from flask_smorest import Blueprint

    from api import create_app
    from api.security import school_route
    from tests.conftest import JWT_SECRET
    from tests.helpers import World

    app = create_app({"MONGODB_URI": database_uri, "JWT_SECRET_KEY": JWT_SECRET})
    world = World.build(app)

    probe = Blueprint("probe", __name__)

    @probe.route("/schools/<school_id>/probe")
    @school_route(module="tracks")
    def probe_view(ctx):
        return {"ok": True}

    app.register_blueprint(probe, url_prefix="/api/v1")
    client = app.test_client()
    assert client.get(world.url("/probe"), headers=world.headers("staff")).status_code == 200
    world.set_modules(world.school, tracks=False)
    response = client.get(world.url("/probe"), headers=world.headers("staff"))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "module_disabled"
    # outside the caller's scope it is still 404: the module state is not revealed either
    response = client.get(world.url("/probe"), headers=world.headers("foreign_admin"))
    assert response.status_code == 404


def test_admin_creates_users_and_filters_them(client, world):
    headers = world.headers("admin")
    body = {"email": "Lib@Example.test", "name": "Libby", "role": "staff",
            "department": "Library", "password": "long-enough-pw"}
    created = client.post(world.url("/users"), json=body, headers=headers)
    assert created.status_code == 201
    assert created.json["email"] == "lib@example.test"
    assert "password" not in created.json
    again = client.post(world.url("/users"), json=body, headers=headers)
    assert again.status_code == 409
    listed = client.get(world.url("/users?department=Library"), headers=headers).json
    assert [u["name"] for u in listed["items"]] == ["Libby"]
    departments = client.get(world.url("/departments"), headers=headers).json
    assert {"name": "Library", "people": 1} in departments["items"]


def test_staff_and_students_cannot_create_users(client, world):
    body = {"email": "x@example.test", "name": "X", "role": "staff"}
    for role in ("staff", "student"):
        assert client.post(world.url("/users"), json=body,
                           headers=world.headers(role)).status_code == 403


def test_users_pagination(client, world):
    headers = world.headers("admin")
    for i in range(7):
        world.add_user(world.school, "student", name=f"Pupil {i:02d}")
    page = client.get(world.url("/users?role=student&page=2&page_size=3"), headers=headers).json
    assert page["total"] == 8
    assert page["page"] == 2 and page["page_size"] == 3
    assert len(page["items"]) == 3
    too_big = client.get(world.url("/users?page_size=501"), headers=headers)
    assert too_big.status_code == 422
    assert "page_size" in too_big.json["error"]["details"]


def test_absurd_page_numbers_are_422_not_500(client, world):
    """Found by the fuzzer: a page number past 64 bits overflowed the skip."""
    response = client.get(world.url("/users?page=352447974200879668835133685760"),
                          headers=world.headers("admin"))
    assert response.status_code == 422
    assert "page" in response.json["error"]["details"]


@pytest.mark.integration
def test_parallel_module_switches_lose_none(live):
    import requests

    from tests.helpers import parallel

    world = live.world
    school = world.add_school(world.company, modules={})
    url = live.url(world.url("/modules", school))
    headers = world.headers("company_admin")
    modules = ["timetable", "weekly_groups", "tracks", "team_rosters"]
    responses = parallel(4, lambda i: requests.put(url, json={modules[i]: True},
                                                   headers=headers))
    assert [r.status_code for r in responses] == [200] * 4
    final = requests.get(live.url(world.url("", school)), headers=headers).json()
    assert final["modules"] == {name: True for name in modules}
