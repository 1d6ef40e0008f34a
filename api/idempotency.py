"""`Idempotency-Key` on POSTs: the first response again for a retry of the same request
within 24 hours (marked `Idempotent-Replayed: true`), 422 `idempotency_key_reused` for another
request under the key, 409 `idempotency_key_in_use` while the first still runs. The rules are
in service/idempotency.py; here the key is read from the request and the response stored.

A key is scoped to the caller the bearer token names; without a token (login), or with one
that is not a valid access or refresh token (the view answers 401), it is ignored.

A route whose answer holds a secret shown only once (a new API key) is marked `@no_replay`:
its answer is never stored (it would keep the secret for 24 hours), the key is ignored there
(no claim, no replay: a retry makes a new key, the caller revokes the spare one), and the
OpenAPI document does not offer `Idempotency-Key` on it.
"""

from __future__ import annotations

import logging
import re
from copy import deepcopy

from flask import current_app, g, request
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from pymongo.errors import PyMongoError

from api.errors import error_response
from api.security import bearer_token, request_actor
from service.idempotency import IdempotencyKeys, StoredResponse, fingerprint
from service.service_accounts import is_api_key

log = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
SANE_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces
NO_REPLAY = "x-rota-no-replay"  # read and removed by api/openapi.py


def no_replay(fn):
    """Never store this route's answer for replay (see the module docstring). Put it right
    above the view function, below `@school_route`/`@authenticated`."""
    fn._no_replay = True
    fn._apidoc = deepcopy(getattr(fn, "_apidoc", {}))
    fn._apidoc["manual_doc"] = {**fn._apidoc.get("manual_doc", {}), NO_REPLAY: True}
    return fn


def _replayable() -> bool:
    view = current_app.view_functions.get(request.endpoint)
    return not getattr(view, "_no_replay", False)


def claim_key():
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None or not _replayable():
        return None
    if not SANE_KEY.fullmatch(key):
        return error_response(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to "
                              "255 printable ASCII characters without spaces.")
    caller = _caller()
    if caller is None:
        return None
    keys = IdempotencyKeys(caller)
    request_fingerprint = fingerprint(request.method, request.full_path,
                                      request.get_data(cache=True))
    stored = keys.claim(key, request_fingerprint)
    if stored is not None:
        return replay(stored)
    g.idempotency = (keys, key, request_fingerprint)
    return None


def _caller() -> str | None:
    if is_api_key(bearer_token() or ""):
        return str(request_actor().user_id)  # the key's service account (401 when not valid)
    try:
        verify_jwt_in_request(optional=True, verify_type=False)
    except (JWTExtendedException, PyJWTError):
        return None
    return get_jwt_identity()


def replay(stored: StoredResponse):
    response = current_app.response_class(stored.body, status=stored.status,
                                          content_type=stored.content_type)
    if stored.location:
        response.headers["Location"] = stored.location
    response.headers[REPLAYED] = "true"
    return response


def store_response(response):
    claimed = g.pop("idempotency", None)
    if claimed is None:
        return response
    keys, key, request_fingerprint = claimed
    try:
        keys.complete(key, request_fingerprint, StoredResponse(
            response.status_code, response.get_data(), response.content_type,
            response.headers.get("Location")))
    except PyMongoError as exc:
        # The request did its work: answer it. Its claim expires in minutes, then a retry runs.
        log.warning("could not store the response of Idempotency-Key %r: %s", key, exc)
    return response


def init_idempotency(app) -> None:
    app.before_request(claim_key)
    app.after_request(store_response)
