"""Every JSON answer the Flask test client gets, checked against the service's own OpenAPI
document: the status is documented for that operation, and the body matches the schema of that
status (types, `required`, `nullable`). `tests/conftest.py` turns it on for every test of the
suite (except those marked `synthetic_failure`), so the spec cannot drift from what the service
really answers.
"""

from __future__ import annotations

import json
import re

import jsonschema_rs
from flask.testing import FlaskClient

FLASK_PATH_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# Answered by the framework, never by a route: `default` (the error schema) covers them.
UNDOCUMENTED_OK = {405, 500}
DROPPED = {"readOnly", "writeOnly", "example", "examples", "discriminator", "xml",
           "externalDocs", "deprecated"}


def json_schema(node):
    """OpenAPI 3.0 schema objects -> JSON Schema: `nullable: true` becomes `null` allowed."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {}
    for key, value in node.items():
        if key in DROPPED or key.startswith("x-") or key == "nullable":
            continue
        if key == "properties":
            converted[key] = {name: json_schema(prop) for name, prop in value.items()}
        elif key in ("enum", "required", "default"):
            converted[key] = value
        else:
            converted[key] = json_schema(value)
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


class ResponseChecker:
    def __init__(self, app, spec: dict):
        self.adapter = app.url_map.bind("localhost")
        self.spec = spec
        self.components = json_schema(spec["components"])
        self.validators: dict = {}

    def operation(self, method: str, path: str):
        try:
            rule, _ = self.adapter.match(path, method.upper(), return_rule=True)
        except Exception:  # 404/405 from routing: no operation
            return None, None
        template = FLASK_PATH_PARAM.sub(r"{\1}", rule.rule)
        return template, self.spec["paths"].get(template, {}).get(method.lower())

    def problems(self, method: str, path: str, status: int, mimetype: str, body: bytes,
                 headers) -> list[str]:
        template, op = self.operation(method, path)
        if op is None:
            return []  # not an API operation (openapi.json, docs, static)
        name = f"{method.upper()} {template} -> {status}"
        found = []
        if "X-Request-ID" not in headers:
            found.append(f"{name}: no X-Request-ID header")
        response = op["responses"].get(str(status))
        if response is None:
            if status not in UNDOCUMENTED_OK:
                found.append(f"{name}: status not documented "
                             f"(documented: {sorted(op['responses'])})")
            return found
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        content = response.get("content") or {}
        if mimetype != "application/json" or not body:
            if content and status != 204 and mimetype not in content:
                found.append(f"{name}: {mimetype or 'no body'}, documented {sorted(content)}")
            return found
        schema = (content.get("application/json") or {}).get("schema")
        if schema is None:
            found.append(f"{name}: a JSON body where none is documented")
            return found
        key = json.dumps(schema, sort_keys=True)
        if key not in self.validators:
            self.validators[key] = jsonschema_rs.Draft7Validator(
                {"allOf": [json_schema(schema)], "components": self.components})
        for error in self.validators[key].iter_errors(json.loads(body)):
            where = "/".join(str(part) for part in error.instance_path) or "(body)"
            found.append(f"{name}: at {where}: {error.message}"[:400])
            if len(found) > 8:
                break
        return found


class CheckedClient(FlaskClient):
    """A test client that checks each answer when `checker` is set (see conftest)."""

    checker: ResponseChecker | None = None

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        checker = type(self).checker
        if checker is not None:
            request = response.request
            found = checker.problems(request.method, request.path, response.status_code,
                                     response.mimetype, response.get_data(), response.headers)
            if found:
                raise AssertionError("the response does not match the OpenAPI document:\n  "
                                     + "\n  ".join(found))
        return response
