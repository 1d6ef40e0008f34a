"""Fields and schemas every area uses: ids, times, dates, pages and errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, validate

from service.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MAX_PAGE = 1_000_000  # skip() overflows far beyond; no list is that long
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Id(fields.String):
    """An ObjectId as a 24-hex string, both ways."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(r"[0-9a-fA-F]{24}", text):
            raise ValidationError("Not a valid id.")
        return text


class Timestamp(fields.DateTime):
    """ISO-8601 UTC with a trailing Z (stored naive UTC)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="seconds") + "Z"


class TimeOfDay(fields.String):
    """"HH:MM", 24h."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not TIME_OF_DAY.match(text):
            raise ValidationError("Must be a time of day as HH:MM (24h).")
        return text


class Date(fields.Date):
    """YYYY-MM-DD; stored as a datetime at midnight, since BSON has no date type."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, datetime):
            value = value.date()
        return super()._serialize(value, attr, obj, **kwargs)


class BaseSchema(Schema):
    class Meta:
        ordered = True


class PageArgs(BaseSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(load_default=DEFAULT_PAGE_SIZE,
                               validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


def page_of(item_schema: type[Schema], name: str | None = None) -> type[Schema]:
    """The list envelope `{items, total, page, page_size}` around one item schema."""
    return type(name or f"{item_schema.__name__.removesuffix('Schema')}PageSchema",
                (BaseSchema,), {
                    "items": fields.List(fields.Nested(item_schema)),
                    "total": fields.Integer(),
                    "page": fields.Integer(),
                    "page_size": fields.Integer(),
                })


class ErrorBody(BaseSchema):
    code = fields.String(metadata={"example": "not_found"})
    message = fields.String()
    details = fields.Dict()


class ErrorSchema(BaseSchema):
    error = fields.Nested(ErrorBody)
