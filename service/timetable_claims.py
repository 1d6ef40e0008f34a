"""The write primitives of the timetable that keep invariants without transactions: revision
locks (one writer per document version) and class/room slot claims. The protocols are
described in documents/timetable.py; the nightly importer follows the same ones."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId
from mongoengine.queryset.visitor import Q
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.base import utcnow
from documents.timetable import (
    CLAIM_GRACE_SECONDS,
    Assignment,
    RevisionLock,
    SlotClaim,
    claim_keys,
)
from service.errors import Conflict


def take_lock(school_id, target_id, version: int, current_version=None) -> ObjectId | None:
    """Insert the revision lock for writing `version` of a document (see documents/timetable).
    None when another writer holds it. `current_version()` re-reads the document's version:
    a lock older than the grace period on a document that never reached `version` was left
    by a crash and is released once."""
    for attempt in range(2):
        lock = RevisionLock(id=ObjectId(), school_id=school_id, target_id=target_id,
                            version=version)
        try:
            RevisionLock._get_collection().insert_one(lock.to_mongo())
            return lock.id
        except DuplicateKeyError:
            if attempt or current_version is None or not _release_stale_lock(
                    school_id, target_id, version, current_version):
                return None
    return None


def _release_stale_lock(school_id, target_id, version: int, current_version) -> bool:
    cutoff = utcnow() - timedelta(seconds=CLAIM_GRACE_SECONDS)
    held = RevisionLock.objects.for_school(school_id).filter(
        target_id=target_id, version=version).first()
    if held is None:
        return True
    if held.created_at > cutoff or current_version() != version - 1:
        return False
    RevisionLock.objects.for_school(school_id).filter(id=held.id).delete()
    return True


def release_lock(school_id, lock_id) -> None:
    RevisionLock.objects.for_school(school_id).filter(id=lock_id).delete()


def revise(model, school_id, document, write, **conditions) -> bool:
    """Change one versioned document under its revision lock: `write(queryset)` gets the
    query set filtered on the document's id, version and `conditions`, and answers how many
    documents it changed. False when another writer holds the lock or the filter missed."""
    found = model.objects.for_school(school_id).filter(id=document.id)
    lock = take_lock(school_id, document.id, document.version + 1,
                     lambda: found.scalar("version").first())
    if lock is None:
        return False
    try:
        return bool(write(found.filter(version=document.version, **conditions)))
    finally:
        release_lock(school_id, lock)


class SlotClaims:
    """Writing and releasing class/room claims (the claim protocol of documents/timetable)."""

    def __init__(self, school_id):
        self.school_id = school_id

    def insert(self, claims: list[SlotClaim]) -> None:
        """Insert every claim or none; 409 naming the class or room already taken."""
        if not claims:
            return
        for attempt in range(2):
            try:
                SlotClaim._get_collection().insert_many([c.to_mongo() for c in claims])
                return
            except (BulkWriteError, DuplicateKeyError):
                self.release_ids([c.id for c in claims])
            holders = self._holders(claims)
            if attempt == 0 and self._release_stale(holders):
                continue
            raise self._taken_error(holders)

    def release_ids(self, claim_ids) -> None:
        SlotClaim.objects.for_school(self.school_id).filter(id__in=list(claim_ids)).delete()

    def release_keys(self, assignment_id, keys: set[tuple[str, str]]) -> None:
        if not keys:
            return
        wanted = Q()
        for kind, key in keys:
            wanted |= Q(kind=kind, key=key)
        SlotClaim.objects.for_school(self.school_id).filter(
            assignment_id=assignment_id).filter(wanted).delete()

    def release_assignment(self, assignment_id) -> None:
        SlotClaim.objects.for_school(self.school_id).filter(assignment_id=assignment_id).delete()

    def _holders(self, claims: list[SlotClaim]) -> list[SlotClaim]:
        first = claims[0]
        ours = {(c.kind, c.key) for c in claims}
        found = SlotClaim.objects.for_school(self.school_id).filter(
            day_of_week=first.day_of_week, period_id=first.period_id,
            key__in=[key for _, key in ours], assignment_id__ne=first.assignment_id)
        return [c for c in found if (c.kind, c.key) in ours]

    def _release_stale(self, holders: list[SlotClaim]) -> bool:
        """Delete claims left behind by an interrupted writer (older than the grace period
        and not backed by their assignment). True when any was released."""
        cutoff = utcnow() - timedelta(seconds=CLAIM_GRACE_SECONDS)
        old = [c for c in holders if c.created_at < cutoff]
        if not old:
            return False
        backing = {a.id: a for a in Assignment.objects.for_school(self.school_id).filter(
            id__in=[c.assignment_id for c in old])}
        stale = [c for c in old if not self._backed(c, backing.get(c.assignment_id))]
        for claim in stale:
            SlotClaim.objects.for_school(self.school_id).filter(
                id=claim.id, assignment_id=claim.assignment_id).delete()
        return bool(stale)

    @staticmethod
    def _backed(claim: SlotClaim, assignment: Assignment | None) -> bool:
        return (assignment is not None and assignment.day_of_week == claim.day_of_week
                and assignment.period_id == claim.period_id
                and (claim.kind, claim.key) in claim_keys(assignment.classes))

    @staticmethod
    def _taken_error(holders: list[SlotClaim]) -> Conflict:
        if not holders:  # the holder went away meanwhile: still a collision, try again
            return Conflict("The slot changed while booking; try again.",
                            code="concurrent_change")
        holder = holders[0]
        what = "Class" if holder.kind == "class" else "Room"
        return Conflict(f"{what} {holder.key!r} is already taught in this slot.",
                        code=f"{holder.kind}_taken",
                        details={"kind": holder.kind, "key": holder.key,
                                 "assignment_id": str(holder.assignment_id)})
