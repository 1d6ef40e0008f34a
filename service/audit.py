"""The audit trail: every mutation through a manager appends one event."""

from __future__ import annotations

from datetime import date, datetime

from bson import ObjectId
from mongoengine.queryset.visitor import Q

from documents.audit import AuditEvent
from service.context import Actor, SchoolContext
from service.pagination import Page, paginate

MAX_SUMMARY_ITEMS = 20


def summarize(value):
    """A short, JSON-safe copy of a before/after state for the trail."""
    if isinstance(value, dict):
        items = list(value.items())[:MAX_SUMMARY_ITEMS]
        return {str(k): summarize(v) for k, v in items if k not in ("password_hash", "_cls")}
    if isinstance(value, list | tuple):
        return [summarize(v) for v in value[:MAX_SUMMARY_ITEMS]]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "to_mongo"):
        return summarize(value.to_mongo().to_dict())
    return value


def audit_event(actor: Actor, school_id, action: str, entity_type: str, entity_id=None,
                before=None, after=None) -> AuditEvent:
    """Build (not save) an event, so bulk operations can insert many in one round trip."""
    return AuditEvent(
        school_id=school_id, company_id=actor.company_id, actor_id=actor.user_id,
        actor_role=actor.audit_role, actor_name=actor.service_account, action=action,
        entity_type=entity_type, entity_id=str(entity_id) if entity_id is not None else None,
        before=summarize(before) or {}, after=summarize(after) or {},
    )


def bulk_event(actor: Actor, school_id, action: str, entity_type: str,
               entity_ids) -> AuditEvent:
    """One event for the many documents a bulk write created: their ids, and their count."""
    ids = [str(entity_id) for entity_id in entity_ids]
    return AuditEvent(
        school_id=school_id, company_id=actor.company_id, actor_id=actor.user_id,
        actor_role=actor.audit_role, actor_name=actor.service_account, action=action,
        entity_type=entity_type, entity_ids=ids,
        after={"count": len(ids)},
    )


def record(actor: Actor, school_id, action: str, entity_type: str, entity_id=None,
           before=None, after=None) -> AuditEvent:
    return audit_event(actor, school_id, action, entity_type, entity_id, before, after).save()


def record_many(events: list[AuditEvent]) -> None:
    if events:
        AuditEvent.objects.insert(events, load_bulk=False)


class AuditLog:
    """Reading a school's trail (admins)."""

    def __init__(self, ctx: SchoolContext):
        self.ctx = ctx

    def list(self, entity_type: str | None = None, entity_id: str | None = None,
             action: str | None = None, page: int = 1, page_size: int = 50) -> Page:
        events = AuditEvent.objects.for_school(self.ctx.school_id)
        if entity_type:
            events = events.filter(entity_type=entity_type)
        if entity_id:
            events = events.filter(Q(entity_id=entity_id) | Q(entity_ids=entity_id))
        if action:
            events = events.filter(action=action)
        return paginate(events.order_by("-created_at", "-id"), page, page_size)
