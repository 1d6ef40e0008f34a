"""The caller's own notifications."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields

from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import authenticated
from service.notifications import Inbox

blp = Blueprint("notifications", __name__, url_prefix="/notifications",
                description="Notifications for the signed-in user")


class NotificationArgs(PageArgs):
    unread = fields.Boolean()


class NotificationSchema(BaseSchema):
    id = Id()
    school_id = Id(allow_none=True)
    kind = fields.String()
    message = fields.String()
    data = fields.Dict()
    read_at = Timestamp(allow_none=True)
    created_at = Timestamp()


@blp.route("", methods=["GET"])
@blp.arguments(NotificationArgs, location="query")
@blp.response(200, page_of(NotificationSchema))
@authenticated
def list_notifications(actor, args):
    return Inbox(actor).list(**args)


@blp.route("/<notification_id>/read", methods=["POST"])
@blp.response(200, NotificationSchema)
@authenticated
def mark_read(actor, notification_id):
    return Inbox(actor).mark_read(notification_id)
