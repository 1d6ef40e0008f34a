"""The OpenAPI document, written so that client generators type it correctly.

flask-smorest builds the spec from the blueprints; `RotaApi` finishes it once, in one place,
instead of per route:

- every operation gets an `operationId`: the view's endpoint name in camelCase
  (`list_assignments` -> `listAssignments`), unless the route sets one with
  `@blp.doc(operationId=...)` (done where two blueprints use one name);
- a nullable nested object is `{allOf: [{$ref}], nullable: true}` (not apispec's
  `anyOf: [{type: object, nullable: true}, {$ref}]`, which generators turn into an untyped bag);
- response schemas list `required`: every field a response schema declares is always in the
  answer (null when it allows none) unless the field says `metadata={"optional": True}`.
  A schema also used in a request body gets a `...Read` copy for responses;
- every operation lists the error statuses it can answer (400/401/403/404/409/422/429/503,
  derived from its auth, roles, module, path and body; `@blp.alt_response` adds the rest)
  with the error schema, and the headers the service sends (`X-Request-ID` everywhere,
  `RateLimit-*` and `Retry-After`, `Idempotency-Key` and `Idempotent-Replayed` on POSTs,
  `ETag` and `If-Match` with its 412 on the routes marked `@versioned` (api/etags.py));
- `servers`, examples of the main operations, `GET /metrics` and `?bom=true` on CSV routes.

The Swagger UI page shows the `x-roles` / `x-module` extensions (`showExtensions`).
"""

from __future__ import annotations

import copy
import re
from http import HTTPStatus

from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from flask import send_from_directory
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path

from api.etags import MARK as ETAG_MARK
from api.idempotency import NO_REPLAY
from api.schemas import ErrorSchema

HTTP_METHODS = ("get", "put", "post", "patch", "delete")
WRITES = frozenset({"put", "post", "patch", "delete"})
ALL_ROLES = frozenset({"company_admin", "school_admin", "staff", "student"})
OPTIONAL = "x-rota-optional"  # marks a field that a response may leave out; stripped at the end
SCHEMA_REF = "#/components/schemas/"
NO_DATABASE = ("/health/live", "/metrics")  # answered without the database: never 503
FLASK_PATH_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

# Error statuses: the component response of each, and when an operation can answer it.
ERRORS = {
    400: ("BadRequest", "The body is not a JSON object, or the Idempotency-Key or If-Match "
                        "is malformed (`bad_request`, `invalid_idempotency_key`, "
                        "`invalid_if_match`)."),
    401: ("Unauthorized", "No, a bad, an expired or a revoked token or API key "
                          "(`unauthorized`)."),
    403: ("Forbidden", "Authenticated but not allowed: the caller's role, a module switched off "
                       "for the school (`module_disabled`), a read-only API key writing "
                       "(`read_only`), a locked record (`locked`, `department_locked`)."),
    404: ("NotFound", "Unknown id, or an id of another school (never revealed) "
                      "(`not_found`)."),
    409: ("Conflict", "A business rule conflict (the code names it), a duplicate natural key "
                      "(`duplicate`), or the Idempotency-Key's first request still running "
                      "(`idempotency_key_in_use`)."),
    412: ("PreconditionFailed", "`If-Match` does not match the resource's current ETag: it "
                                "changed since it was read (`precondition_failed`, with "
                                "`details.current_version` and `details.current_etag`); "
                                "nothing was written."),
    413: ("PayloadTooLarge", "The upload is over the size limit (`payload_too_large`)."),
    422: ("UnprocessableEntity", "Validation failed: `details` maps each offending field to "
                                "its messages (`validation_error`); or the Idempotency-Key was "
                                "used for another request (`idempotency_key_reused`)."),
    429: ("TooManyRequests", "Too many requests: the API key's rate limit, or too many failed "
                            "sign-ins (`too_many_requests`). Retry after `Retry-After` "
                            "seconds."),
    503: ("ServiceUnavailable", "The database is unreachable right now; try again shortly "
                               "(`database_unavailable`)."),
}

HEADERS = {
    "X-Request-ID": {"description": "The request's id (the caller's own when it sent a sane "
                                    "one); error bodies repeat it in `details.request_id`.",
                     "schema": {"type": "string"}},
    "RateLimit-Limit": {"description": "Requests an API key may make per window (API key "
                                       "callers only).", "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Requests left in this window (API key callers "
                                           "only).", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until the window resets (API key callers "
                                       "only).", "schema": {"type": "integer"}},
    "Retry-After": {"description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer"}},
    "ETag": {"description": "The resource's strong validator, `\"<id>-v<version>\"`: send it "
                            "as `If-Match` on PATCH, PUT or DELETE to write only if nobody "
                            "changed the resource since.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "`true` when this is the stored answer to an "
                                           "earlier request with the same Idempotency-Key.",
                            "schema": {"type": "string", "enum": ["true"]}},
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Retry safely: the same key and body within 24 hours answer the first "
                   "response again (`Idempotent-Replayed: true`); the same key with another "
                   "body answers 422 `idempotency_key_reused`. 1 to 255 printable ASCII "
                   "characters, no spaces.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]+$"},
}
IF_MATCH = {
    "name": "If-Match", "in": "header", "required": False,
    "description": "Write only if the resource is still at this version: the `ETag` of an "
                   "earlier GET (or `*`: it exists). Otherwise 412 `precondition_failed` with "
                   "`details.current_version` and `details.current_etag`, nothing written. "
                   "Not a list of quoted entity tags: 400 `invalid_if_match`.",
    "schema": {"type": "string"},
}
BOM = {"name": "bom", "in": "query", "required": False,
       "description": "`true`: start the file with a UTF-8 byte order mark (for Excel).",
       "schema": {"type": "boolean", "default": False}}

SERVERS = [{"url": "/", "description": "The server that serves this document"},
           {"url": "http://127.0.0.1:8000", "description": "`make run` on a workstation"}]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# ---- marshmallow -> OpenAPI ----

class RotaConverter(OpenAPIConverter):
    def init_attribute_functions(self):
        super().init_attribute_functions()
        self.attribute_functions.append(self.field2optional)

    def field2nullable(self, field, ret) -> dict:
        """A nullable nested object keeps its type: `{allOf: [{$ref}], nullable: true}`."""
        if field.allow_none and self.openapi_version.major == 3 \
                and self.openapi_version.minor < 1:
            if "$ref" in ret:
                return {"allOf": [{"$ref": ret.pop("$ref")}], "nullable": True}
            if "allOf" in ret:
                return {"allOf": ret.pop("allOf"), "nullable": True}
        return super().field2nullable(field, ret)

    def field2optional(self, field, **kwargs) -> dict:
        return {OPTIONAL: True} if field.metadata.get("optional") else {}


class RotaMarshmallowPlugin(MarshmallowPlugin):
    Converter = RotaConverter


# ---- the Api ----

class RotaApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def __init__(self, app=None, **kwargs):
        kwargs.setdefault("spec_kwargs", {}).setdefault("marshmallow_plugin",
                                                        RotaMarshmallowPlugin())
        self._finished = None
        super().__init__(app, **kwargs)

    def init_app(self, app, **kwargs):
        app.config.setdefault("OPENAPI_SWAGGER_UI_CONFIG", {"showExtensions": True,
                                                            "showCommonExtensions": True})
        super().init_app(app, **kwargs)
        # The docs page's own JavaScript and CSS (no CDN): a file route, not an API operation.
        prefix = (app.config.get("OPENAPI_URL_PREFIX") or "").rstrip("/")
        app.add_url_rule(f"{prefix}/docs/assets/<path:filename>",
                         "docs_asset", docs_asset, methods=["GET"])

    def _init_spec(self, **kwargs):
        super()._init_spec(**kwargs)
        # /api/v1/openapi.json and `flask openapi print|write` serve the finished document.
        self._unfinished = self.spec.to_dict
        self.spec.to_dict = self.openapi

    def openapi(self) -> dict:
        """The finished document (built once, on first use: after every blueprint is
        registered; the routes do not change after start)."""
        if self._finished is None:
            self._finished = finish(copy.deepcopy(self._unfinished()), self._app)
        return self._finished


def docs_asset(filename):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


# ---- finishing the document ----

def finish(spec: dict, app) -> dict:
    spec["servers"] = SERVERS
    components = spec.setdefault("components", {})
    components.setdefault("headers", {}).update(HEADERS)
    add_metrics(spec)
    endpoints = endpoint_names(app)
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                finish_operation(path, method, item[method], endpoints)
    unique_operation_ids(spec, endpoints)
    add_error_responses(components)
    require_response_fields(spec)
    add_examples(spec)
    return spec


def endpoint_names(app) -> dict:
    """(OpenAPI path, method) -> (blueprint, view) of the Flask endpoint."""
    names = {}
    for rule in app.url_map.iter_rules():
        path = FLASK_PATH_PARAM.sub(r"{\1}", rule.rule)
        blueprint, _, view = rule.endpoint.rpartition(".")
        for method in rule.methods or ():
            names[(path, method.lower())] = (blueprint, view)
    return names


def unique_operation_ids(spec: dict, endpoints: dict) -> None:
    """Two blueprints with one view name: the derived ids get their blueprint's name in front
    (`weeklyGroupsDeleteGroup`) so the document stays valid; name such routes with
    `@blp.doc(operationId=...)`."""
    ids: dict = {}
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                ids.setdefault(item[method]["operationId"], []).append((path, method))
    for operation_id, routes in ids.items():
        if len(routes) < 2:
            continue
        for path, method in routes:
            blueprint = endpoints.get((path, method), ("", ""))[0]
            if blueprint and camel(endpoints[(path, method)][1]) == operation_id:
                spec["paths"][path][method]["operationId"] = camel(blueprint) + \
                    operation_id[:1].upper() + operation_id[1:]


def finish_operation(path: str, method: str, op: dict, endpoints: dict) -> None:
    if "operationId" not in op:
        op["operationId"] = camel(endpoints[(path, method)][1])
    etag = op.pop(ETAG_MARK, False)
    replayable = not op.pop(NO_REPLAY, False)  # api/idempotency.py: `@no_replay`
    if_match = etag and method in ("put", "patch", "delete")
    authenticated = op.get("security") != []
    # Every route outside /auth resolves its caller with request_actor: API keys work there,
    # and are rate limited.
    by_key = authenticated and path.startswith("/api/v1/") \
        and not path.startswith("/api/v1/auth/")
    roles = op.get("x-roles")
    # Form fields flask-smorest lists as OpenAPI 2 `formData` parameters are in the
    # multipart requestBody the route documents.
    parameters = [p for p in op.get("parameters", []) if p.get("in") != "formData"]
    op["parameters"] = parameters
    has_body = "requestBody" in op
    has_query = any(p.get("in") == "query" for p in parameters)
    statuses = set()
    if has_body or (method == "post" and authenticated):
        statuses.add(400)
    if authenticated:
        statuses.add(401)
    if (roles and set(roles) != ALL_ROLES) or op.get("x-module") \
            or (by_key and method in WRITES):
        statuses.add(403)
    if "{" in path:
        statuses.add(404)
    if authenticated and method in WRITES:
        statuses.add(409)
    if has_body or has_query or (authenticated and method in WRITES):
        statuses.add(422)  # writes: a manager's ValidationFailed, a reused Idempotency-Key
    if by_key:
        statuses.add(429)
    if not path.endswith(NO_DATABASE):
        statuses.add(503)
    if if_match:
        statuses.update((400, 412))
    responses = op["responses"]
    for status in sorted(statuses):
        responses.setdefault(str(status), {})
    for status, response in responses.items():
        if status == "default" or status[0] in "45":
            if "$ref" in response or not response:
                # flask-smorest's own (UNPROCESSABLE_ENTITY, DEFAULT_ERROR) or one added here
                responses[status] = error_ref(status)
            elif "content" not in response:  # a route's own words: kept, with the schema
                responses[status] = {**error_response(status), **response}
            else:  # a route's own schema (the health probes' 503)
                response.setdefault("headers", {}).update(header_refs("X-Request-ID"))
            continue
        headers = response.setdefault("headers", {})
        headers.update(header_refs("X-Request-ID"))
        if etag and response.get("content"):
            headers.update(header_refs("ETag"))
        if by_key:
            headers.update(header_refs(*RATE_LIMIT_HEADERS))
        if method == "post" and authenticated and replayable:
            headers.update(header_refs("Idempotent-Replayed"))
        if "text/csv" in response.get("content", {}) and BOM not in parameters:
            parameters.append(BOM)
    if method == "post" and authenticated and replayable:
        parameters.append(IDEMPOTENCY_KEY)
    if if_match:
        parameters.append(IF_MATCH)
    if not parameters:
        del op["parameters"]
    op["responses"] = dict(sorted(responses.items(), key=lambda kv: (kv[0] == "default",
                                                                     kv[0])))


def header_refs(*names: str) -> dict:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def error_ref(status: str) -> dict:
    if status == "default":
        return {"$ref": "#/components/responses/Error"}
    if int(status) not in ERRORS:
        return error_response(status)
    return {"$ref": f"#/components/responses/{ERRORS[int(status)][0]}"}


def error_response(status: str) -> dict:
    code = None if status == "default" else int(status)
    if code in ERRORS:
        description = ERRORS[code][1]
    elif code is None:
        description = "Any other error (500 `internal_error`)."
    else:
        description = HTTPStatus(code).phrase
    headers = header_refs("X-Request-ID")
    if code == 429:
        headers.update(header_refs("Retry-After", *RATE_LIMIT_HEADERS))
    return {"description": description, "headers": headers,
            "content": {"application/json": {"schema": {"$ref": SCHEMA_REF + "Error"}}}}


def add_error_responses(components: dict) -> None:
    responses = components.setdefault("responses", {})
    for name in [name for name in responses if name.isupper()]:
        del responses[name]  # flask-smorest's (UNPROCESSABLE_ENTITY, ...): replaced
    responses["Error"] = error_response("default")
    for status, (name, _) in ERRORS.items():
        responses[name] = error_response(str(status))
    schemas = components["schemas"]
    schemas.setdefault("Error", {"type": "object", "properties": {
        "error": {"$ref": SCHEMA_REF + "ErrorBody"}}})
    body = schemas["ErrorBody"]
    body["properties"]["details"]["description"] = (
        "Field messages for 422; `request_id` always.")
    schemas["Error"]["required"] = ["error"]
    body["required"] = ["code", "message", "details"]


def add_metrics(spec: dict) -> None:
    text = {"text/plain": {"schema": {"type": "string"}}}
    spec["paths"]["/metrics"] = {"get": {
        "operationId": "getMetrics", "tags": ["health"], "summary": "Prometheus metrics",
        "description": "Prometheus text exposition of every worker together: requests by "
                       "route, method and status, latency and database round trips. Needs "
                       "`Authorization: Bearer <ROTA_METRICS_TOKEN>` when that is set.",
        "security": [{}, {"bearerAuth": []}],
        "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": text},
                      "401": {}},
    }}


# ---- required fields of responses ----

def require_response_fields(spec: dict) -> None:
    """Response schemas list every field as required (see the module docstring); a schema
    also used in requests is copied as `<Name>Read` for responses."""
    schemas = spec["components"]["schemas"]
    in_requests, in_responses = set(), set()
    for op in operations(spec):
        reach(op.get("requestBody"), schemas, in_requests)
        reach(op.get("parameters"), schemas, in_requests)
        for status, response in op["responses"].items():
            if status.startswith("2"):
                reach(response, schemas, in_responses)
    shared = in_requests & in_responses
    copies: dict = {}

    def reading(name: str) -> str:
        if name not in copies:
            copy_name = f"{name}Read"
            while copy_name in schemas:  # a schema of that name exists already
                copy_name += "Copy"
            copies[name] = copy_name
            schemas[copy_name] = {}
            schemas[copy_name] = rename_refs(copy.deepcopy(schemas[name]), shared)
            require(schemas[copy_name])
        return copies[name]

    def rename_refs(node, names):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith(SCHEMA_REF) and ref[len(SCHEMA_REF):] in names:
                node["$ref"] = SCHEMA_REF + reading(ref[len(SCHEMA_REF):])
            for value in node.values():
                rename_refs(value, names)
        elif isinstance(node, list):
            for value in node:
                rename_refs(value, names)
        return node

    for name in sorted(in_responses - shared):
        rename_refs(schemas[name], shared)
        require(schemas[name])
    for op in operations(spec):
        for status, response in op["responses"].items():
            if status.startswith("2"):
                rename_refs(response.get("content"), shared)
    for schema in schemas.values():
        for prop in schema.get("properties", {}).values():
            prop.pop(OPTIONAL, None)


def require(schema: dict) -> None:
    required = [name for name, prop in schema.get("properties", {}).items()
                if not prop.get(OPTIONAL) and not prop.get("writeOnly")]
    if required:
        schema["required"] = required


def operations(spec: dict):
    for item in spec["paths"].values():
        for method in HTTP_METHODS:
            if method in item:
                yield item[method]


def reach(node, schemas: dict, found: set) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith(SCHEMA_REF):
            name = ref[len(SCHEMA_REF):]
            if name not in found:
                found.add(name)
                reach(schemas[name], schemas, found)
        for value in node.values():
            reach(value, schemas, found)
    elif isinstance(node, list):
        for value in node:
            reach(value, schemas, found)


# ---- examples ----

SCHOOL_ID = "665f1c2e9b1d4a0012345678"
STAFF_ID = "665f1c2e9b1d4a0012345679"
PERIOD_ID = "665f1c2e9b1d4a001234567a"
ASSIGNMENT_ID = "665f1c2e9b1d4a001234567b"
COMPANY_ID = "665f1c2e9b1d4a001234567c"
WHEN = "2026-09-01T08:00:00Z"
USER = {"id": STAFF_ID, "email": "ada@example.org", "name": "Ada Lovelace", "role": "staff",
        "company_id": COMPANY_ID, "school_id": SCHOOL_ID, "department": "Mathematics",
        "external_id": "T-0042"}
CLASS = {"class_id": "10-A", "subject": "Mathematics", "room_number": "R101",
         "student_count": 28}

MODULES = {"timetable": True, "weekly_groups": False, "tracks": True, "team_rosters": False}
SCHOOL = {"id": SCHOOL_ID, "company_id": COMPANY_ID, "name": "Northfield Academy",
          "code": "NFA", "timezone": "Europe/London", "modules": MODULES, "created_at": WHEN}
PERIOD = {"id": PERIOD_ID, "period_number": 1, "period_name": "Period 1",
          "start_time": "08:30", "end_time": "09:20", "duration_minutes": 50,
          "is_active": True}
ASSIGNMENT = {
    "id": ASSIGNMENT_ID, "staff_id": STAFF_ID, "period_id": PERIOD_ID, "day_of_week": 0,
    "week": None, "classes": [CLASS], "assignment_type": "regular", "is_locked": False,
    "locked": False, "original_staff_id": None, "override_notes": None,
    "swap_request_id": None, "activity_name": None, "description": None,
    "locked_reason": None, "locked_by": None, "locked_at": None, "created_by": COMPANY_ID,
    "updated_by": None, "exchange_request_id": None, "version": 1, "created_at": WHEN,
    "updated_at": WHEN}
SLOT = {key: PERIOD[key] for key in ("period_number", "period_name", "start_time",
                                     "end_time")}
GRID = {"staff": {"id": STAFF_ID, "name": "Ada Lovelace", "email": "ada@example.org",
                  "department": "Mathematics"},
        "periods": [PERIOD],
        "days": [{"day_of_week": 0, "slots": [{"period_id": PERIOD_ID, **SLOT,
                                               "status": "assigned", "locked": False,
                                               "assignment": ASSIGNMENT}]},
                 {"day_of_week": 1, "slots": [{"period_id": PERIOD_ID, **SLOT,
                                               "status": "empty", "locked": False,
                                               "assignment": None}]}]}

# operationId -> (request body example, success response example); tests check them against
# the schemas.
EXAMPLES = {
    "login": ({"email": "ada@example.org", "password": "correct-horse-battery"},
              {"access_token": "eyJhbGciOi...", "refresh_token": "eyJhbGciOi...",
               "user": USER}),
    "createSchool": ({"name": "Northfield Academy", "code": "NFA"}, SCHOOL),
    "setModules": (MODULES, SCHOOL),
    "createUser": ({"email": "ada@example.org", "name": "Ada Lovelace", "role": "staff",
                    "department": "Mathematics", "external_id": "T-0042"}, USER),
    "createPeriod": ({"period_number": 1, "period_name": "Period 1", "start_time": "08:30",
                      "end_time": "09:20"}, PERIOD),
    "createAssignment": ({"staff_id": STAFF_ID, "period_id": PERIOD_ID, "day_of_week": 0,
                          "classes": [CLASS]}, ASSIGNMENT),
    "staffGrid": (None, GRID),
}


def add_examples(spec: dict) -> None:
    by_id = {op["operationId"]: op for op in operations(spec)}
    for operation_id, (request, response) in EXAMPLES.items():
        op = by_id.get(operation_id)
        if op is None:
            continue
        if request is not None and "requestBody" in op:
            op["requestBody"]["content"]["application/json"]["example"] = request
        if response is not None:
            success = next(r for s, r in op["responses"].items() if s.startswith("2"))
            success["content"]["application/json"]["example"] = response
    not_found = spec["components"]["responses"]["NotFound"]
    not_found["content"]["application/json"]["example"] = {"error": {
        "code": "not_found", "message": "No such assignment.",
        "details": {"request_id": "0b6f7c1e2d3a4b5c8d9e0f1a2b3c4d5e"}}}
    invalid = spec["components"]["responses"]["UnprocessableEntity"]
    invalid["content"]["application/json"]["example"] = {"error": {
        "code": "validation_error", "message": "The request has invalid fields.",
        "details": {"end_time": ["Must be after start_time."],
                    "request_id": "0b6f7c1e2d3a4b5c8d9e0f1a2b3c4d5e"}}}
