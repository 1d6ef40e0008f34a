"""The write primitives of the timetable that keep invariants without transactions: revision
locks (one writer per document version) and class/room slot claims. The protocols are
described in documents/timetable.py; the nightly importer follows the same ones."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId
from mongoengine.queryset.visitor import Q
from pymongo.errors import DuplicateKeyError

from documents.base import utcnow
from documents.connection import insert_unique
from documents.timetable import (
    CLAIM_GRACE_SECONDS,
    Assignment,
    RevisionLock,
    SlotClaim,
    claim_ids,
    claims_for,
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
            refused = insert_unique(SlotClaim._get_collection(), [c.to_mongo() for c in claims])
            if not refused:
                return
            self.release([c for index, c in enumerate(claims) if index not in refused])
            holders = self._holders([claims[index] for index in refused])
            if attempt == 0 and self._release_stale(holders):
                continue
            raise self._taken_error(holders)

    def release(self, claims: list[SlotClaim]) -> None:
        """Delete claims this writer inserted (all of one assignment)."""
        if claims:
            self._claims().filter(id__in=[c.id for c in claims],
                                  assignment_id=claims[0].assignment_id).delete()

    def release_keys(self, assignment_id, keys: set[tuple[str, str]]) -> None:
        if not keys:
            return
        wanted = Q()
        for kind, key in keys:
            wanted |= Q(kind=kind, key=key)
        self._claims().filter(assignment_id=assignment_id).filter(wanted).delete()

    def release_assignment(self, assignment_id) -> None:
        self._claims().filter(assignment_id=assignment_id).delete()

    def restore_missing(self) -> tuple[list[SlotClaim], list[SlotClaim]]:
        """Insert every claim an assignment of the school needs and lacks (after an upgrade
        from the older claims collection, or a lost write): (restored, held by another
        assignment). The latter are double bookings for an admin to resolve; a holder left
        behind by a crashed writer is released first."""
        needed, holders = self._needed_and_held()
        taken = [c.id for c in needed if holders.get(c.id, c.assignment_id) != c.assignment_id]
        if taken and self._release_stale(list(self._claims().filter(id__in=taken))):
            needed, holders = self._needed_and_held()
        missing = [claim for claim in needed if claim.id not in holders]
        refused = insert_unique(SlotClaim._get_collection(), [c.to_mongo() for c in missing])
        held_elsewhere = [claim for claim in needed
                          if holders.get(claim.id, claim.assignment_id) != claim.assignment_id]
        return ([c for index, c in enumerate(missing) if index not in refused],
                held_elsewhere + [missing[index] for index in sorted(refused)])

    def _needed_and_held(self) -> tuple[list[SlotClaim], dict]:
        """The claims the school's assignments need, and the holder of every stored claim."""
        assignments = Assignment.objects.for_school(self.school_id).only(
            "id", "school_id", "day_of_week", "period_id", "classes")
        needed = [claim for assignment in assignments for claim in claims_for(assignment)]
        return needed, dict(self._claims().values_list("id", "assignment_id"))

    def _claims(self):
        return SlotClaim.objects.for_school(self.school_id)

    def _holders(self, refused: list[SlotClaim]) -> list[SlotClaim]:
        return list(self._claims().filter(id__in=[c.id for c in refused],
                                          assignment_id__ne=refused[0].assignment_id))

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
            self._claims().filter(id=claim.id, assignment_id=claim.assignment_id).delete()
        return bool(stale)

    @staticmethod
    def _backed(claim: SlotClaim, assignment: Assignment | None) -> bool:
        return assignment is not None and claim.id in claim_ids(
            assignment.school_id, assignment.day_of_week, assignment.period_id,
            assignment.classes)

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
