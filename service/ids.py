"""Turning the API's string ids into ObjectIds, with a 404 for anything malformed."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId

from service.errors import NotFound, ValidationFailed


def object_id(value, what: str = "object") -> ObjectId:
    """An id from a URL: malformed means it cannot exist, so 404 like any unknown id."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        raise NotFound(f"No {what} with id {value!r}.") from None


def unique_ids(values, field: str) -> list[ObjectId]:
    """Body ids as ObjectIds, duplicates dropped, order kept (422 naming `field`)."""
    return list(dict.fromkeys(field_object_id(value, field) for value in values))


def field_object_id(value, field: str) -> ObjectId:
    """An id from a request body: malformed is a validation error on that field."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        raise ValidationFailed(f"{field} is not a valid id.",
                               {field: ["Not a valid id."]}) from None
