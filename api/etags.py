"""`ETag` and `If-Match` for single resources, declared once per route with `@versioned(arg)`.

    @blp.route("/<school_id>/tracks/<track_id>", methods=["PATCH"])
    @blp.arguments(TrackUpdateSchema)
    @blp.response(200, TrackSchema)
    @school_route(module="tracks", roles=ADMIN_ROLES)
    @versioned("track_id")
    def update_track(ctx, body, track_id): ...

`arg` names the path argument holding the resource's id. A resource that is one per school
and has no id of its own (the timetable settings) names the school and a `kind`:
`@versioned("school_id", kind="timetable-settings")`, its ETag `"timetable-settings:<school
id>-v<version>"` (never mistaken for the school's), its manager checking `resource_id(...)`.
A result whose `version` means something else (a project team's `version` is its number in
the lineage) names the field holding the document's write counter:
`@versioned("team_id", field="write_version")`. The decorator

- on every method: sets `ETag: "<id>-v<version>"` on a 2xx answer whose result (a dict or a
  document, before dumping) carries a `version` (service/preconditions.py: `etag_of`);
- on PATCH/PUT/DELETE: parses `If-Match` into an `Expectation` and runs the view under it; the
  manager's one conditional update states it (service/aggregates.py), so a stale `If-Match`
  answers 412 `precondition_failed` with `details.current_version` and `current_etag`, and
  nothing is written. `If-Match: *` only needs the resource to exist (an unknown id stays
  404). Entity tags of other resources or weak tags (`W/"..."`) never match (412); a header
  that is not a list of quoted entity tags answers 400 `invalid_if_match`;
- marks the operation for the OpenAPI document (`ETag` response header, `If-Match` parameter,
  412 and 400: api/openapi.py).

Without `If-Match` a write is unconditional, as before.
"""

from __future__ import annotations

import logging
import re
from copy import deepcopy
from functools import wraps

from flask import request

from service.errors import DomainError
from service.preconditions import Expectation, etag_of, expecting

log = logging.getLogger(__name__)
MARK = "x-rota-etag"  # read and removed by api/openapi.py
CONDITIONAL = frozenset({"PUT", "PATCH", "DELETE"})
ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e]*)"\s*')
OUR_TAG = re.compile(r"(?P<id>.+)-v(?P<version>\d{1,18})")


class InvalidIfMatch(DomainError):
    code = "invalid_if_match"


def versioned(arg: str, kind: str | None = None, field: str = "version"):
    def decorate(fn):
        @wraps(fn)
        def wrapper(*args, **kwargs):
            resource_id = str(request.view_args.get(arg, "")).lower()
            if kind:
                resource_id = f"{kind}:{resource_id}"
            expectation = None
            if request.method in CONDITIONAL and "If-Match" in request.headers:
                expectation = parse_if_match(request.headers["If-Match"], resource_id)
            with expecting(expectation):
                result = fn(*args, **kwargs)
            if expectation is not None and not expectation.checked:
                log.error("If-Match on %s %s was not checked by its manager",
                          request.method, request.path)
            return with_etag(result, resource_id, field)
        wrapper._apidoc = deepcopy(getattr(fn, "_apidoc", {}))
        wrapper._apidoc["manual_doc"] = {**wrapper._apidoc.get("manual_doc", {}), MARK: True}
        return wrapper
    return decorate


def parse_if_match(header: str, resource_id: str) -> Expectation:
    if header.strip() == "*":
        return Expectation(resource_id, None)
    versions = set()
    for part in header.split(","):
        found = ENTITY_TAG.fullmatch(part)
        if found is None:
            raise InvalidIfMatch('If-Match must be "*" or a comma-separated list of quoted '
                                 'entity tags (the ETag of a GET).')
        ours = OUR_TAG.fullmatch(found.group(2))
        if found.group(1) is None and ours and ours.group("id").lower() == resource_id:
            versions.add(int(ours.group("version")))
    return Expectation(resource_id, frozenset(versions))


def with_etag(result, resource_id: str, field: str = "version"):
    if result is None or type(result) is tuple:
        return result
    version = result.get(field) if isinstance(result, dict) else getattr(result, field, None)
    if version is None:
        return result
    return result, {"ETag": etag_of(resource_id, version)}
