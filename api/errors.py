"""The one place where errors become HTTP: the contract's body, never HTML or a trace."""

from __future__ import annotations

import logging

from flask import jsonify, request
from mongoengine.errors import OperationError
from mongoengine.errors import ValidationError as DocumentValidationError
from pymongo.errors import ConnectionFailure, OperationFailure
from werkzeug.exceptions import HTTPException

from api.request_ids import request_id
from documents.connection import is_duplicate_key
from service import errors

log = logging.getLogger(__name__)

STATUS = {
    errors.Unauthorized: 401,
    errors.ModuleDisabled: 403,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.ValidationFailed: 422,
    errors.PreconditionFailed: 412,
    errors.PayloadTooLarge: 413,
    errors.TooManyRequests: 429,
    errors.DatabaseUnavailable: 503,
}

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 412: "precondition_failed",
              413: "payload_too_large",
              415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
              500: "internal_error", 503: "database_unavailable"}

MULTIPART = "multipart/form-data"
DATABASE_DOWN = "The database is unreachable right now; try again shortly."


def error_response(status: int, code: str, message: str, details: dict | None = None):
    """The contract's error body; `details.request_id` ties it to the response's
    X-Request-ID and to the log lines of the request."""
    details = {**(details or {}), "request_id": request_id()}
    response = jsonify({"error": {"code": code, "message": message, "details": details}})
    response.status_code = status
    return response


def status_of(exc: errors.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def handle_domain_error(exc: errors.DomainError):
    response = error_response(status_of(exc), exc.code, exc.message, exc.details)
    if isinstance(exc, errors.TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def handle_http_exception(exc: HTTPException):
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    if status == 422 and "messages" in data:
        return error_response(422, "validation_error", "The request has invalid fields.",
                              _field_messages(data["messages"]))
    if status == 404:
        message = f"Nothing at {request.path}."
    else:
        message = exc.description or HTTP_CODES.get(status, "error")
    return error_response(status, HTTP_CODES.get(status, "error"), message)


def _field_messages(messages: dict) -> dict:
    """webargs nests messages by location (json, query, ...); callers want field names."""
    merged: dict = {}
    for fields in messages.values():
        if isinstance(fields, dict):
            merged.update(fields)
    return merged


def handle_database_down(exc: ConnectionFailure):
    log.warning("database unreachable: %s", exc)
    return error_response(503, "database_unavailable", DATABASE_DOWN)


def handle_write_failure(exc: Exception):
    """A unique index refused a write no manager anticipated: a conflict, not a crash."""
    if is_duplicate_key(exc):
        return error_response(409, "duplicate", "That already exists.")
    return handle_unexpected(exc)


def handle_document_validation(exc: DocumentValidationError):
    return error_response(422, "validation_error", "The request has invalid fields.",
                          {name: [str(err)] for name, err in (exc.errors or {}).items()})


def handle_unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "Something went wrong on our side.")


def reject_non_object_json():
    """400 for a body that is not JSON, or is JSON but not an object (contract)."""
    if request.method not in ("POST", "PUT", "PATCH") or request.mimetype == MULTIPART:
        return None  # uploads are parsed (and their size checked) by their route
    if not request.get_data(cache=True):
        return None
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return error_response(400, "bad_request", "The request body must be a JSON object.")
    return None


def register(app) -> None:
    app.before_request(reject_non_object_json)
    app.register_error_handler(errors.DomainError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ConnectionFailure, handle_database_down)
    app.register_error_handler(DocumentValidationError, handle_document_validation)
    app.register_error_handler(OperationError, handle_write_failure)
    app.register_error_handler(OperationFailure, handle_write_failure)
    app.register_error_handler(Exception, handle_unexpected)
