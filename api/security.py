"""Tokens in, an `Actor` and a checked `SchoolContext` out: used by every protected route.

The bearer is an access token (JWT) or a service account's API key, told apart by the key's
prefix; both become the same `Actor`, so tenancy, roles and audit work alike for both. Key
requests are counted against a per-key rate limit and carry the RateLimit-* headers."""

from __future__ import annotations

from copy import deepcopy
from functools import wraps

from bson import ObjectId
from flask import current_app, g, has_request_context, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
    verify_jwt_in_request,
)

from api.errors import error_response
from documents.accounts import User
from service.auth import Authenticator
from service.context import Actor
from service.service_accounts import ApiKeys, is_api_key
from service.tenancy import school_context

jwt = JWTManager()
READ_METHODS = frozenset({"GET", "HEAD"})


def claims_for(user: User) -> dict:
    return {"role": user.role,
            "company_id": str(user.company_id) if user.company_id else None,
            "school_id": str(user.school_id) if user.school_id else None}


def issue_tokens(user: User) -> dict:
    identity = str(user.id)
    claims = claims_for(user)
    return {"access_token": create_access_token(identity, additional_claims=claims),
            "refresh_token": create_refresh_token(identity, additional_claims=claims)}


def current_actor() -> Actor:
    claims = get_jwt()
    return Actor(user_id=ObjectId(get_jwt_identity()), role=claims["role"],
                 company_id=_oid(claims.get("company_id")),
                 school_id=_oid(claims.get("school_id")))


def _oid(value):
    return ObjectId(value) if value else None


def request_actor() -> Actor:
    """The caller of this request (worked out once): the service account of an API key, or
    the user of a valid, unrevoked access token; 401 otherwise."""
    if "caller" not in g:
        key = bearer_token()
        if key is not None and is_api_key(key):
            g.caller = _key_actor(key)
        else:
            verify_jwt_in_request()
            g.caller = current_actor()
    return g.caller


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _key_actor(key: str) -> Actor:
    keys = ApiKeys()
    school_id = _school_route_id()
    api_key = keys.authenticate(key, writes=request.method not in READ_METHODS,
                                school_id=ObjectId(school_id) if school_id else None)
    if school_id is not None:
        g.checked_school = (school_id, keys.school, None)
    g.api_key_quota = keys.count_request(api_key, current_app.config["ROTA_API_KEY_RATE_LIMIT"])
    keys.require_quota(g.api_key_quota)
    return keys.actor(api_key)


def add_rate_limit_headers(response):
    """IETF RateLimit-* headers on every answer to a key, the 429 included."""
    quota = g.get("api_key_quota")
    if quota is not None:
        response.headers["RateLimit-Limit"] = str(quota.limit)
        response.headers["RateLimit-Remaining"] = str(quota.remaining)
        response.headers["RateLimit-Reset"] = str(quota.reset)
    return response


def forget_caller(_exc) -> None:
    # `g` outlives the request when an app context was pushed around it (tests, commands).
    g.pop("caller", None)
    g.pop("api_key_quota", None)
    g.pop("revocation", None)
    g.pop("checked_school", None)


def token_revoked(jti: str) -> bool:
    """The blocklist check of an access or refresh token, once per request. On a school route
    it reads the school along with it (one round trip) and keeps it for the tenancy check."""
    if not has_request_context():
        return Authenticator().is_revoked(jti)
    known = g.get("revocation")
    if known is not None and known[0] == jti:
        return known[1]
    school_id = _school_route_id()
    if school_id is None:
        revoked = Authenticator().is_revoked(jti)
    else:
        school, revoked, webhooks = Authenticator().school_and_revocation(
            ObjectId(school_id), jti, webhooks=request.method not in READ_METHODS)
        g.checked_school = (school_id, school, webhooks)
    g.revocation = (jti, revoked)
    return revoked


def _school_route_id() -> str | None:
    """The well-formed `school_id` of this request's school route, if it is one."""
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "_school_access", None) is None or not request.view_args:
        return None
    school_id = request.view_args.get("school_id")
    return school_id if isinstance(school_id, str) and ObjectId.is_valid(school_id) else None


def authenticated(fn):
    """Any valid API key or valid, unrevoked access token; the view receives the `Actor`."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(request_actor(), *args, **kwargs)
    return wrapper


def school_route(module: str | None = None, roles=None):
    """Mark a route as school-scoped. Before the view runs, and before its body is parsed,
    `enforce_school_access` resolves `school_id` for the caller: 404 outside their scope, 403
    for a role that may not or a module switched off. The view receives the `SchoolContext`."""
    def decorate(fn):
        @wraps(fn)
        def wrapper(*args, school_id, **kwargs):
            return fn(g.school_ctx, *args, **kwargs)
        wrapper._school_access = (module, roles)
        wrapper._apidoc = deepcopy(getattr(fn, "_apidoc", {}))
        wrapper._apidoc["manual_doc"] = {**wrapper._apidoc.get("manual_doc", {}),
                                         **access_doc(module, roles)}
        return wrapper
    return decorate


def enforce_school_access():
    view = current_app.view_functions.get(request.endpoint)
    access = getattr(view, "_school_access", None)
    # A CORS preflight (OPTIONS) carries no credentials: api/cors.py answers it.
    if access is None or request.view_args is None or request.method == "OPTIONS":
        return
    module, roles = access
    actor = request_actor()
    school_id = request.view_args["school_id"]
    checked = g.pop("checked_school", None)
    prefetched = ({"school": checked[1], "webhooks": checked[2]}
                  if checked and checked[0] == school_id else {})
    g.school_ctx = school_context(actor, school_id, module=module, roles=roles, **prefetched)


def access_doc(module: str | None, roles) -> dict:
    """OpenAPI extensions naming the module and roles of a route; the isolation sweep in
    tests/test_isolation.py reads them, so a new route is covered without being listed."""
    doc = {"x-roles": sorted(roles) if roles else ["company_admin", "school_admin", "staff",
                                                    "student"]}
    if module:
        doc["x-module"] = module
    return doc


def init_security(app) -> None:
    jwt.init_app(app)
    app.before_request(enforce_school_access)
    app.after_request(add_rate_limit_headers)
    app.teardown_request(forget_caller)

    @jwt.token_in_blocklist_loader
    def is_revoked(_header, payload):
        return token_revoked(payload["jti"])

    def unauthorized(message):
        return error_response(401, "unauthorized", message)

    jwt.unauthorized_loader(lambda reason: unauthorized(
        "Sign in first: send 'Authorization: Bearer <access token>'."))
    jwt.invalid_token_loader(lambda reason: unauthorized(
        "An API key is not a person's token: /auth routes need an access token."
        if is_api_key(bearer_token() or "") else f"The token is not valid: {reason}."))
    jwt.expired_token_loader(lambda _h, _p: unauthorized("The token has expired; refresh it."))
    jwt.revoked_token_loader(lambda _h, _p: unauthorized("The token was revoked; sign in again."))
    jwt.needs_fresh_token_loader(lambda _h, _p: unauthorized("A fresh sign-in is needed."))
    jwt.user_lookup_error_loader(lambda _h, _p: unauthorized("This account no longer exists."))
    jwt.token_verification_failed_loader(lambda _h, _p: unauthorized("The token was refused."))
