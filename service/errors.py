"""Domain errors. Managers raise these; `api/errors.py` maps them to HTTP once."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a manager raises on purpose."""

    code = "error"

    def __init__(self, message: str, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class ModuleDisabled(Forbidden):
    code = "module_disabled"

    def __init__(self, module: str):
        super().__init__(f"The {module} module is switched off for this school.",
                         details={"module": module})


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class ValidationFailed(DomainError):
    """Input that passed the schema but breaks a rule (422); `details` names the fields."""

    code = "validation_error"

    def __init__(self, message: str, details: dict | None = None, code: str | None = None):
        super().__init__(message, code=code, details=details)


class PreconditionFailed(DomainError):
    """`If-Match` named a version the resource is no longer (or never was) at (412);
    `details` carry the current version and its ETag, nothing was written."""

    code = "precondition_failed"

    def __init__(self, resource_id, current_version):
        from service.preconditions import etag_of

        version = int(current_version or 0)
        super().__init__("The resource changed since you read it (If-Match does not match "
                         "its current ETag); read it again and retry.",
                         details={"current_version": version,
                                  "current_etag": etag_of(resource_id, version)})


class TooManyRequests(DomainError):
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class DatabaseUnavailable(DomainError):
    code = "database_unavailable"


class PayloadTooLarge(DomainError):
    """An upload over its size limit (413); `details.max_bytes` says the limit."""

    code = "payload_too_large"
