"""The tenant wall, swept over every endpoint of the OpenAPI spec (a new route is covered
without being listed here): outsiders get 404, roles a route does not name get 403, students
never write, and one school's objects are 404 through another school's URL."""

from __future__ import annotations

import importlib
import itertools
import re

import pytest
from bson import ObjectId

from documents import all_documents
from documents.accounts import User
from documents.base import SchoolOwned
from service.context import MODULES, SchoolContext

WRITES = {"post", "put", "patch", "delete"}
OUTSIDERS = ("other_admin", "other_staff", "foreign_admin", "foreign_company_admin")
INSIDERS = {"school_admin": "admin", "staff": "staff", "student": "student"}
NON_ID_PARAMS = {"class_id": "10-A", "department": "Mathematics", "filename": "x.js",
                 "room": "Room 101"}
MAX_COMBINATIONS = 12


@pytest.fixture
def spec(client):
    return client.get("/api/v1/openapi.json").json


def school_operations(spec):
    for path, item in sorted(spec["paths"].items()):
        if "{school_id}" not in path:
            continue
        for method, operation in item.items():
            if method in WRITES | {"get"}:
                yield path, method, operation


def call(client, method, url, headers):
    body = {} if method in WRITES - {"delete"} else None
    return client.open(url, method=method.upper(), json=body, headers=headers)


def fill(path: str, values: dict) -> str:
    return re.sub(r"{(\w+)}", lambda m: str(values[m.group(1)]), path)


def placeholder(param: str) -> str:
    if "week" in param:
        return "1"
    return NON_ID_PARAMS.get(param, str(ObjectId()))


def test_the_sweep_covers_every_module(spec):
    covered = {op.get("x-module") for _, _, op in school_operations(spec)}
    assert covered >= set(MODULES)


def test_outsiders_get_404_on_every_school_endpoint(client, world, spec):
    for path, method, _ in school_operations(spec):
        values = {p: placeholder(p) for p in re.findall(r"{(\w+)}", path)}
        values["school_id"] = world.school.id
        url = fill(path, values)
        for caller in OUTSIDERS:
            response = call(client, method, url, world.headers(caller))
            assert response.status_code == 404, (caller, method, path, response.json)
            assert response.json["error"]["code"] == "not_found"


def test_roles_a_route_does_not_name_get_403(client, world, spec):
    checked = 0
    for path, method, operation in school_operations(spec):
        allowed = operation.get("x-roles")
        if not allowed:
            continue
        values = {p: placeholder(p) for p in re.findall(r"{(\w+)}", path)}
        values["school_id"] = world.school.id
        for role, person in INSIDERS.items():
            if role in allowed:
                continue
            response = call(client, method, fill(path, values), world.headers(person))
            assert response.status_code == 403, (role, method, path, response.json)
            checked += 1
    assert checked > 0


def test_students_never_write(client, world, spec):
    for path, method, _ in school_operations(spec):
        if method not in WRITES:
            continue
        values = {p: placeholder(p) for p in re.findall(r"{(\w+)}", path)}
        values["school_id"] = world.school.id
        response = call(client, method, fill(path, values), world.headers("student"))
        assert response.status_code >= 400, (method, path, response.json)


@pytest.fixture
def seeded_ids(world):
    """Sample data of every module in world.school, and the ids of all it created."""
    people = {"admin": world.admin,
              "staff": [world.staff, world.staff2] + [
                  world.add_user(world.school, "staff", department="Mathematics")
                  for _ in range(3)],
              "students": [world.student] + [world.add_user(world.school, "student")
                                             for _ in range(5)]}
    ctx = SchoolContext(_actor(world.admin), world.school.id, world.company.id,
                        frozenset(MODULES))
    for module in MODULES:
        try:
            demo = importlib.import_module(f"scripts.demo_{module}")
        except ModuleNotFoundError:
            continue
        demo.seed(ctx, people)
    ids = {"users": [u.id for u in User.objects(school_id=world.school.id).only("id")]}
    for document in all_documents():
        if issubclass(document, SchoolOwned):
            found = [d.id for d in document.objects(school_id=world.school.id).only("id")[:5]]
            if found:
                ids[document._get_collection_name()] = found
    return ids


def _actor(user):
    from service.context import Actor

    return Actor(user.id, user.role, user.company_id, user.school_id)


def candidates(param: str, ids: dict) -> list:
    if "week" in param or param in NON_ID_PARAMS:
        return [placeholder(param)]
    token = param.removesuffix("_id")
    if token in ("staff", "user", "instructor", "member"):
        token = "users"
    matching = [found for name, found in ids.items() if token.rstrip("s") in name]
    pool = matching or list(ids.values())
    return list(dict.fromkeys(itertools.chain.from_iterable(pool)))[:6]


def test_one_schools_objects_are_404_through_another_schools_url(client, world, spec,
                                                                 seeded_ids):
    """The other school's admin (same company, every module on) names this school's objects
    under their own school's URL: never a 2xx, never this school's data."""
    marker_ids = {str(i) for found in seeded_ids.values() for i in found}
    checked = 0
    for path, method, _ in school_operations(spec):
        params = [p for p in re.findall(r"{(\w+)}", path) if p != "school_id"]
        if all(not isinstance(candidates(p, seeded_ids)[0], ObjectId) for p in params):
            continue  # no object id in the path: nothing of the other school to name
        choices = [candidates(p, seeded_ids) for p in params]
        for combination in itertools.islice(itertools.product(*choices), MAX_COMBINATIONS):
            values = dict(zip(params, combination, strict=True))
            values["school_id"] = world.other_school.id
            for caller in ("other_admin", "company_admin"):
                response = call(client, method, fill(path, values), world.headers(caller))
                assert response.status_code >= 400, (caller, method, path, values)
                leaked = marker_ids & set(re.findall(r"[0-9a-f]{24}",
                                                     response.get_data(as_text=True)))
                assert leaked <= {str(v) for v in values.values()}, (method, path, leaked)
                checked += 1
    assert checked > 0
