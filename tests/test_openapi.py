"""The OpenAPI document is one that client generators type correctly (issue 14): valid,
operationIds, typed nullable objects, `required` on responses, the error statuses and headers
of every operation; and the response checker of tests/openapi_check.py finds drift."""

from __future__ import annotations

import json
import re

import jsonschema_rs
import pytest
from openapi_spec_validator import validate

from tests.openapi_check import ResponseChecker, json_schema

ALL_ROLES = {"company_admin", "school_admin", "staff", "student"}
METHODS = ("get", "put", "post", "patch", "delete")
WITHOUT_DATABASE = ("/api/v1/health/live", "/metrics")


@pytest.fixture(scope="module")
def spec(shared_app):
    return shared_app.test_client().get("/api/v1/openapi.json").json


def operations(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(spec, node):
    while "$ref" in node:
        section, name = node["$ref"].split("/")[-2:]
        node = spec["components"][section][name]
    return node


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_the_document_is_valid_openapi(spec):
    assert spec["openapi"].startswith("3.0")
    validate(spec)


def test_every_operation_has_a_unique_camel_case_operation_id(spec):
    ids = [op.get("operationId") for _, _, op in operations(spec)]
    assert None not in ids
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", i) for i in ids), ids
    by_route = {(path, method): op["operationId"] for path, method, op in operations(spec)}
    school = "/api/v1/schools/{school_id}"
    assert by_route[(school + "/timetable/assignments", "get")] == "listAssignments"
    assert by_route[(school + "/timetable/alteration-requests/{request_id}/accept",
                     "post")] == "acceptAlterationRequest"
    assert by_route[(school + "/groups", "post")] == "createCourseGroup"
    assert by_route[("/api/v1/auth/login", "post")] == "login"


def test_nullable_nested_objects_keep_their_type(spec):
    for node in walk(spec):
        for alternative in node.get("anyOf", []):
            assert alternative != {"type": "object", "nullable": True}, node
    slot = spec["components"]["schemas"]["Slot"]["properties"]["assignment"]
    assert slot == {"allOf": [{"$ref": "#/components/schemas/Assignment"}], "nullable": True}


def test_nullable_fields_say_so(spec):
    """The issue's example: a course's description comes back null."""
    course = spec["components"]["schemas"]["TrackCourse"]
    assert course["properties"]["description"]["nullable"] is True
    assert "description" in course["required"]


def response_schemas(spec):
    """Every component schema a 2xx response reaches."""
    schemas = spec["components"]["schemas"]
    found = set()

    def reach(node):
        for child in walk(node):
            ref = child.get("$ref", "")
            if ref.startswith("#/components/schemas/") and ref.split("/")[-1] not in found:
                found.add(ref.split("/")[-1])
                reach(schemas[ref.split("/")[-1]])

    for _, _, op in operations(spec):
        for status, response in op["responses"].items():
            if status.startswith("2"):
                reach(response)
    return found


def test_every_response_schema_lists_required(spec):
    schemas = spec["components"]["schemas"]
    reached = response_schemas(spec)
    assert len(reached) > 100
    for name in reached:
        if schemas[name].get("properties"):
            assert schemas[name].get("required"), name
    # A schema also used in a request body is copied for responses, with `required`.
    assert "ClassRead" in reached and "Class" not in reached
    assert schemas["ClassRead"]["required"] == ["class_id", "subject", "room_number",
                                                "student_count"]
    assert "required" not in schemas["Class"] or "room_number" not in schemas["Class"]["required"]
    # A field a response may leave out says so by not being required.
    assert "dated_status" not in schemas["Slot"]["required"]
    assert not any("x-rota-optional" in node for node in walk(spec))


def test_every_operation_documents_its_error_statuses_and_headers(spec):
    for path, method, op in operations(spec):
        name = (method, path)
        responses = op["responses"]
        authenticated = op.get("security") != []
        expected = set()
        if path not in WITHOUT_DATABASE:
            expected.add("503")
        if authenticated:
            expected.add("401")
        if "{" in path:
            expected.add("404")
        if "requestBody" in op:
            expected |= {"400", "422"}
        if op.get("x-module") or set(op.get("x-roles", ALL_ROLES)) != ALL_ROLES:
            expected.add("403")
        # A new API key's answer holds the secret: never stored for replay (`@no_replay`).
        replayable = op["operationId"] not in ("createSchoolKey", "createCompanyKey")
        if method == "post" and authenticated:
            expected |= {"400", "409", "422"}
            assert replayable == any(p["name"] == "Idempotency-Key" and p["in"] == "header"
                                     for p in op.get("parameters", [])), name
        if authenticated and path.startswith("/api/v1/schools"):
            expected.add("429")
        assert expected <= set(responses), (name, expected - set(responses))
        for status, response in responses.items():
            response = resolve(spec, response)
            assert "X-Request-ID" in response.get("headers", {}), (name, status)
            if status[0] in "45" or status == "default":
                schema = response["content"]["application/json"]["schema"]
                if path.startswith("/api/v1/health"):
                    continue
                assert schema == {"$ref": "#/components/schemas/Error"}, (name, status)
            if status == "429":
                assert {"Retry-After", "RateLimit-Remaining"} <= set(response["headers"])
            if status.startswith("2") and method == "post" and authenticated:
                assert ("Idempotent-Replayed" in response["headers"]) == replayable, name
    login = spec["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert {"401", "429"} <= set(login)


def test_servers_metrics_health_and_csv_options_are_documented(spec):
    assert spec["servers"][0]["url"] == "/"
    metrics = spec["paths"]["/metrics"]["get"]
    assert "text/plain" in metrics["responses"]["200"]["content"]
    assert {"/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready"} <= set(spec["paths"])
    csv_routes = [op for _, _, op in operations(spec)
                  if "text/csv" in op["responses"].get("200", {}).get("content", {})]
    assert csv_routes
    for op in csv_routes:
        assert any(p["name"] == "bom" and p["in"] == "query" for p in op["parameters"])


def test_docs_assets_are_served_but_are_not_an_operation(spec, shared_app):
    assert not [path for path in spec["paths"] if "/docs" in path]
    client = shared_app.test_client()
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_the_docs_page_shows_the_role_and_module_extensions(shared_app):
    page = shared_app.test_client().get("/api/v1/docs").get_data(as_text=True)
    config = json.loads(re.search(r"override_config = (\{.*?\});", page).group(1))
    assert config["showExtensions"] is True


def test_examples_match_their_schemas(spec):
    components = json_schema(spec["components"])
    checked = 0
    for path, method, op in operations(spec):
        bodies = [op.get("requestBody", {})] + [resolve(spec, r) for r in
                                                op["responses"].values()]
        for body in bodies:
            media = body.get("content", {}).get("application/json", {})
            if "example" in media:
                validator = jsonschema_rs.Draft7Validator(
                    {"allOf": [json_schema(media["schema"])], "components": components})
                errors = [e.message for e in validator.iter_errors(media["example"])]
                assert not errors, (method, path, errors)
                checked += 1
    assert checked >= 6


def test_the_response_checker_finds_drift(shared_app, spec):
    checker = ResponseChecker(shared_app, spec)
    url = "/api/v1/schools/665f1c2e9b1d4a0012345678/tracks/665f1c2e9b1d4a0012345679/courses"
    course = {"id": "665f1c2e9b1d4a001234567a", "track_id": "665f1c2e9b1d4a0012345679",
              "title": "Intro", "description": None, "position": 0, "modules": [],
              "created_at": "2026-09-01T08:00:00Z"}

    def problems(status, body):
        return checker.problems("POST", url, status, "application/json",
                                json.dumps(body).encode(), {"X-Request-ID": "x"})

    assert problems(201, course) == []
    missing = {key: value for key, value in course.items() if key != "position"}
    assert any("required" in p for p in problems(201, missing))
    assert any("not of type" in p for p in problems(201, {**course, "title": None}))
    assert any("not documented" in p for p in problems(418, {"error": {}}))
