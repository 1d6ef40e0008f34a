"""Sign in, refresh, sign out, and who am I."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import request
from flask_jwt_extended import get_jwt, jwt_required
from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.schemas import BaseSchema, Id
from api.security import current_actor, issue_tokens
from service.auth import Authenticator

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Sign in and tokens")


class LoginSchema(BaseSchema):
    email = fields.Email(required=True)
    password = fields.String(required=True, validate=validate.Length(min=1, max=512))


class UserSchema(BaseSchema):
    id = Id(dump_only=True)
    email = fields.Email()
    name = fields.String()
    role = fields.String()
    company_id = Id()
    school_id = Id(allow_none=True)
    department = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)


class TokensSchema(BaseSchema):
    access_token = fields.String()
    refresh_token = fields.String()
    user = fields.Nested(UserSchema)


class AccessTokenSchema(BaseSchema):
    access_token = fields.String()


@blp.route("/login", methods=["POST"])
@blp.arguments(LoginSchema)
@blp.response(200, TokensSchema)
@blp.alt_response(401, description="Wrong email or password (the same answer whether the "
                                   "email exists or not).")
@blp.alt_response(429, description="Too many failed sign-ins from this address or on this "
                                   "account: wait `Retry-After` seconds.")
@blp.doc(security=[])
def login(credentials):
    # Behind a reverse proxy this is the proxy's address unless ROTA_TRUSTED_PROXIES is set.
    user = Authenticator().login(credentials["email"], credentials["password"],
                                 request.remote_addr)
    return {**issue_tokens(user), "user": user}


@blp.route("/refresh", methods=["POST"])
@blp.response(200, AccessTokenSchema)
@blp.doc(security=[{"bearerAuth": []}],
         description="Send the refresh token as the bearer token.")
@jwt_required(refresh=True)
def refresh():
    user = Authenticator().user(current_actor().user_id)
    return {"access_token": issue_tokens(user)["access_token"]}


@blp.route("/logout", methods=["POST"])
@blp.response(204)
@blp.doc(description="Revokes the bearer token (access or refresh) for every worker.")
@jwt_required(verify_type=False)
def logout():
    token = get_jwt()
    expires = datetime.fromtimestamp(token["exp"], UTC).replace(tzinfo=None)
    Authenticator().revoke(current_actor(), token["jti"], expires)


@blp.route("/me", methods=["GET"])
@blp.response(200, UserSchema)
@jwt_required()
def me():
    return Authenticator().user(current_actor().user_id)
