"""Service accounts and API keys for integrations: of one school, or company-wide."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.idempotency import no_replay
from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import authenticated, school_route
from service.service_accounts import ACCOUNT_ROLES, ServiceAccounts

blp = Blueprint("service_accounts", __name__, description=(
    "Service accounts and API keys (company admins). A key is sent as "
    "`Authorization: Bearer <key>`; a school account acts as a school admin of its school, a "
    "company-wide one as a school admin of every school of the company (never creating schools "
    "or switching modules); `read_only` accounts may only GET. Each key may make "
    "ROTA_API_KEY_RATE_LIMIT requests a minute (RateLimit-* headers; 429 with Retry-After)."))

COMPANY_ADMIN = frozenset({"company_admin"})


class ServiceAccountCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))


class ServiceAccountSchema(BaseSchema):
    id = Id(dump_only=True)
    company_id = Id(dump_only=True)
    school_id = Id(dump_only=True, allow_none=True, metadata={
        "description": "null for a company-wide account"})
    name = fields.String()
    role = fields.String()
    created_at = Timestamp(dump_only=True)


class ApiKeyCreateSchema(BaseSchema):
    expires_at = Timestamp(allow_none=True, metadata={
        "description": "when the key stops working (future, UTC); never when absent"})


class ApiKeySchema(BaseSchema):
    id = Id(dump_only=True)
    prefix = fields.String(metadata={"description": "the key's visible start, e.g. rota_1a2b3c4d"})
    expires_at = Timestamp(allow_none=True)
    revoked_at = Timestamp(allow_none=True)
    last_used_at = Timestamp(allow_none=True, metadata={"description": "to the minute"})
    created_at = Timestamp()


class NewApiKeySchema(ApiKeySchema):
    key = fields.String(metadata={"description": "the whole key: shown only in this answer"})


# One list schema each, shared by the school and the company-wide routes.
ServiceAccountPageSchema = page_of(ServiceAccountSchema)
ApiKeyPageSchema = page_of(ApiKeySchema)


@blp.route("/schools/<school_id>/service-accounts", methods=["POST"])
@blp.arguments(ServiceAccountCreateSchema)
@blp.response(201, ServiceAccountSchema)
@school_route(roles=COMPANY_ADMIN)
def create_school_account(ctx, body):
    return ServiceAccounts.of_school(ctx).create(**body)


@blp.route("/schools/<school_id>/service-accounts", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ServiceAccountPageSchema)
@school_route(roles=COMPANY_ADMIN)
def list_school_accounts(ctx, args):
    return ServiceAccounts.of_school(ctx).list(**args)


@blp.route("/schools/<school_id>/service-accounts/<account_id>/keys", methods=["POST"])
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, NewApiKeySchema)
@school_route(roles=COMPANY_ADMIN)
@no_replay  # the answer holds the plain key: never stored for an Idempotency-Key replay
def create_school_key(ctx, body, account_id):
    return ServiceAccounts.of_school(ctx).create_key(account_id, **body)


@blp.route("/schools/<school_id>/service-accounts/<account_id>/keys", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ApiKeyPageSchema)
@school_route(roles=COMPANY_ADMIN)
def list_school_keys(ctx, args, account_id):
    return ServiceAccounts.of_school(ctx).list_keys(account_id, **args)


@blp.route("/schools/<school_id>/service-accounts/<account_id>/keys/<key_id>",
           methods=["DELETE"])
@blp.response(204)
@school_route(roles=COMPANY_ADMIN)
def revoke_school_key(ctx, account_id, key_id):
    ServiceAccounts.of_school(ctx).revoke_key(account_id, key_id)


@blp.route("/service-accounts", methods=["POST"])
@blp.arguments(ServiceAccountCreateSchema)
@blp.response(201, ServiceAccountSchema)
@authenticated
def create_company_account(actor, body):
    return ServiceAccounts.of_company(actor).create(**body)


@blp.route("/service-accounts", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ServiceAccountPageSchema)
@blp.alt_response(403, description="Only company admins manage service accounts.")
@authenticated
def list_company_accounts(actor, args):
    return ServiceAccounts.of_company(actor).list(**args)


@blp.route("/service-accounts/<account_id>/keys", methods=["POST"])
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, NewApiKeySchema)
@authenticated
@no_replay  # the answer holds the plain key: never stored for an Idempotency-Key replay
def create_company_key(actor, body, account_id):
    return ServiceAccounts.of_company(actor).create_key(account_id, **body)


@blp.route("/service-accounts/<account_id>/keys", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ApiKeyPageSchema)
@blp.alt_response(403, description="Only company admins manage service accounts.")
@authenticated
def list_company_keys(actor, args, account_id):
    return ServiceAccounts.of_company(actor).list_keys(account_id, **args)


@blp.route("/service-accounts/<account_id>/keys/<key_id>", methods=["DELETE"])
@blp.response(204)
@authenticated
def revoke_company_key(actor, account_id, key_id):
    ServiceAccounts.of_company(actor).revoke_key(account_id, key_id)
