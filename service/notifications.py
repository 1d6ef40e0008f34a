"""Notifications for users: created by managers, read by their recipient."""

from __future__ import annotations

from documents.audit import Notification
from documents.base import utcnow
from service import audit
from service.context import Actor
from service.errors import NotFound
from service.ids import object_id
from service.pagination import Page, paginate


def notify(user_id, kind: str, message: str, school_id=None, data: dict | None = None):
    return Notification(user_id=user_id, school_id=school_id, kind=kind, message=message,
                        data=data or {}).save()


def notify_many(notifications: list[Notification]) -> None:
    if notifications:
        Notification.objects.insert(notifications, load_bulk=False)


class Inbox:
    """The caller's own notifications."""

    def __init__(self, actor: Actor):
        self.actor = actor

    def list(self, unread: bool | None = None, page: int = 1, page_size: int = 50) -> Page:
        items = Notification.objects(user_id=self.actor.user_id)
        if unread is True:
            items = items.filter(read_at=None)
        elif unread is False:
            items = items.filter(read_at__ne=None)
        return paginate(items.order_by("-created_at", "-id"), page, page_size)

    def mark_read(self, notification_id) -> Notification:
        """Mark one of the caller's notifications read; audited the first time only."""
        nid = object_id(notification_id, "notification")
        changed = Notification.objects(id=nid, user_id=self.actor.user_id,
                                       read_at=None).update_one(set__read_at=utcnow())
        notification = Notification.objects(id=nid, user_id=self.actor.user_id).first()
        if notification is None:
            raise NotFound(f"No notification with id {notification_id!r}.")
        if changed:
            audit.record(self.actor, notification.school_id, "mark_read", "notification", nid,
                         after={"read_at": notification.read_at})
        return notification
