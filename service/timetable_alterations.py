"""Alteration requests: a staff member hands one of their assignments to a named colleague or
to a whole department (first eligible acceptor wins).

Two aggregates, the request and the assignment's slot, written in this order:
  1. pending -> accepting   one update filtered on status "pending": exactly one of parallel
                            accepts, rejects and cancels wins; it records accepted_by and
                            accepting_since
  2. the lesson moves       one compare-and-set of the slot: still the requester's, the
                            acceptor free in that slot; it records swap_request_id
  3. accepting -> accepted  (or -> failed with `failure_code` when step 2 was refused)
A crash after 1 leaves an `accepting` request, and the slot tells what happened: the move is
there (swap_request_id = the request) -> it is settled as accepted at once; the move is not
there and the request is older than ACCEPTING_GRACE_SECONDS (no live accept can still be at
step 2) -> failed. Every path that meets an accepting request (get, accept, reject, cancel, a
new request for its assignment, `rota repair`) settles it; the one update out of `accepting`
that succeeds writes the outcome's notifications and audit event, so they happen once.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from bson import ObjectId
from mongoengine.errors import NotUniqueError
from mongoengine.queryset.visitor import Q

from documents.accounts import User
from documents.audit import AuditEvent, Notification
from documents.base import utcnow
from documents.connection import insert_unique
from documents.timetable import AlterationRequest, Assignment
from service import webhooks
from service.aggregates import update_if, update_where
from service.audit import audit_event
from service.base import SchoolService
from service.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from service.ids import object_id
from service.notifications import notify_many
from service.pagination import Page, paginate
from service.timetable import department_members, permissions_of, real_department
from service.timetable_assignments import check_not_locked, lesson_label
from service.timetable_slots import (
    change_slot_of,
    find_assignment,
    find_assignment_in_slot,
    replaced,
    staff_booked,
    staff_busy,
)

# Longer than a worker's request timeout, so a live accept is never "repaired" under it.
ACCEPTING_GRACE_SECONDS = 120
KIND = "timetable_alteration"


def outcome_id(request_id, outcome: str, number: int) -> ObjectId:
    """The id of the audit event (0) or a notification (1, 2) of a request's outcome: the
    same for every caller that records it, so the unique _id keeps one."""
    digest = hashlib.sha256(f"{request_id}:{outcome}:{number}".encode()).digest()
    return ObjectId(digest[:12])


def request_summary(request: AlterationRequest) -> dict:
    return {"assignment_id": request.assignment_id, "status": request.status,
            "requester_id": request.requester_id, "target_staff_id": request.target_staff_id,
            "target_department": request.target_department, "reason": request.reason}


class AlterationRequests(SchoolService):
    """Create, list, accept, reject and cancel alteration requests."""

    # creating

    def create(self, assignment_id, reason: str, target_staff_id=None,
               target_department: str | None = None) -> AlterationRequest:
        self.require_role({"staff"})
        if (target_staff_id is None) == (target_department is None):
            raise ValidationFailed("Give exactly one of target_staff_id and target_department.",
                                   {"target_staff_id": ["Give this or target_department."]})
        requester, named = self._me_and(target_staff_id)
        # The slot whole: the assignment, and whether the target already teaches then.
        assignment, slot = find_assignment_in_slot(self.school_id,
                                                   object_id(assignment_id, "assignment"))
        if assignment is None:
            raise NotFound(f"No assignment with id {assignment_id!r}.")
        if assignment.staff_id != requester.id:
            raise Conflict("Only the staff member holding an assignment can request to hand it "
                           "over.", code="not_your_assignment")
        check_not_locked(assignment)
        target = self._named_target(target_staff_id, requester, named) \
            if target_staff_id else None
        if target_department is not None:
            target_department = self._department_with_members(target_department, requester)
        department = target.department if target else target_department
        self._check_departments(requester.department, department)
        if target and self._would_swap_back(assignment, target.id):
            raise Conflict("You received this period by swap from this colleague; it cannot be "
                           "sent straight back.", code="circular_swap")
        if target and staff_booked(slot, target.id, week=assignment.week):
            raise Conflict(f"{target.name} already teaches in that slot.", code="slot_taken",
                           details={"target_staff_id": str(target.id)})
        request = self._insert(AlterationRequest(
            school_id=self.school_id, assignment_id=assignment.id,
            day_of_week=assignment.day_of_week, period_id=assignment.period_id,
            requester_id=requester.id, requester_department=requester.department,
            target_staff_id=target.id if target else None,
            target_department=None if target else target_department,
            reason=reason, open_key=str(assignment.id)))
        self._announce_new(request, requester, assignment)
        self.audit("create", KIND, request.id, after=request_summary(request))
        webhooks.emit(self.ctx, "swap.requested", {"request_id": request.id,
                                                   **request_summary(request)})
        return request

    def _me(self) -> User:
        return User.objects.for_school(self.school_id).get(id=self.actor.user_id)

    def _me_and(self, user_id) -> tuple[User, User | None]:
        """The caller and the user `user_id` names (None when not of this school), in one
        read; without `user_id`, the caller alone."""
        if user_id is None or not ObjectId.is_valid(str(user_id)):
            return self._me(), None  # a malformed id: `_named_target` answers 422 in turn
        wanted = ObjectId(str(user_id))
        found = {user.id: user for user in User.objects.for_school(self.school_id).filter(
            id__in=list({self.actor.user_id, wanted}))}
        if self.actor.user_id not in found:
            return self._me(), None  # as `_me`: the caller's user is gone
        return found[self.actor.user_id], found.get(wanted)

    def _named_target(self, target_staff_id, requester: User, named: User | None = None
                      ) -> User:
        """The target named in the body, as `member` checks it (`named`: already read)."""
        if named is not None and named.is_active:
            target = named
            if target.role != "staff":
                raise ValidationFailed("target_staff_id must be one of: staff.",
                                       {"target_staff_id": [f"Has role {target.role}."]})
        else:
            target = self.member(target_staff_id, "target_staff_id", roles={"staff"})
        if target.id == requester.id:
            raise ValidationFailed("You cannot send a request to yourself.",
                                   {"target_staff_id": ["Must be a colleague."]})
        return target

    def _department_with_members(self, name: str, requester: User) -> str:
        """The school's department of that name (case and spaces aside), spelled as its
        people have it; 422 when it has no other active staff member to ask."""
        department = real_department(self.school_id, name)
        members = department and department_members(self.school_id, department, requester.id)
        if not members:
            raise ValidationFailed(f"No colleague of department {name!r} can take the lesson.",
                                   {"target_department": ["No other active staff member."]})
        return department

    def _check_departments(self, sending: str | None, receiving: str | None) -> None:
        permissions = permissions_of(self.school_id, [sending, receiving])
        if sending in permissions and not permissions[sending].allow_alterations:
            raise Forbidden(f"The {sending} department may not send alteration requests.",
                            code="department_locked", details={"department": sending})
        if receiving in permissions and not permissions[receiving].allow_inbound:
            raise Forbidden(f"The {receiving} department may not receive alteration requests.",
                            code="department_locked", details={"department": receiving})

    @staticmethod
    def _would_swap_back(assignment: Assignment, receiver_id) -> bool:
        return (assignment.assignment_type == "peer_swap"
                and assignment.original_staff_id == receiver_id)

    def _insert(self, request: AlterationRequest) -> AlterationRequest:
        for attempt in range(2):
            try:
                return request.save(force_insert=True)
            except NotUniqueError:
                request.id = None
                if attempt == 0 and self._release_stale_open(request.assignment_id):
                    continue
        raise Conflict("A request for this assignment is already pending.",
                       code="request_pending")

    def _release_stale_open(self, assignment_id) -> bool:
        """An open request blocks new ones; settle it when it can no longer move: its requester
        lost the assignment, or its accept was interrupted."""
        blocker = AlterationRequest.objects.for_school(self.school_id).filter(
            open_key=str(assignment_id)).first()
        if blocker is None or self._settle(blocker):
            return True
        owner = find_assignment(self.school_id, assignment_id)
        if blocker.status != "pending" or (owner and owner.staff_id == blocker.requester_id):
            return False
        return self._fail(blocker, "assignment_changed")

    def _announce_new(self, request, requester: User, assignment: Assignment) -> None:
        if request.target_staff_id:
            receivers = [request.target_staff_id]
        else:
            receivers = department_members(self.school_id, request.target_department,
                                           requester.id)
        message = (f"{requester.name} has asked you to take their lesson on "
                   f"{lesson_label(self.school_id, assignment)}: {request.reason}")
        notify_many([Notification(user_id=user_id, school_id=self.school_id, kind=KIND,
                                  message=message, data={"request_id": str(request.id)})
                     for user_id in receivers])

    # reading

    def list(self, box: str = "all", status: str | None = None, page: int = 1,
             page_size: int = 50) -> Page:
        found = AlterationRequest.objects.for_school(self.school_id)
        if box != "all" or not self.actor.is_admin:
            found = found.filter(self._box_filter(box))
        if status:
            found = found.filter(status=status)
        return paginate(found.order_by("-created_at", "-id"), page, page_size)

    def _box_filter(self, box: str) -> Q:
        me = self.actor.user_id
        department = User.objects.for_school(self.school_id).filter(id=me).scalar(
            "department").first()
        incoming = Q(target_staff_id=me)
        if department:  # a department request the caller declined is closed for them
            incoming |= Q(target_department=department, requester_id__ne=me,
                          declined_by__ne=me)
        outgoing = Q(requester_id=me)
        return {"incoming": incoming, "outgoing": outgoing}.get(box, incoming | outgoing)

    def get_request(self, request_id) -> AlterationRequest:
        request = self.get(AlterationRequest, request_id, "alteration request")
        if not self.actor.is_admin and not self._involves_me(request):
            raise NotFound(f"No alteration request with id {request_id!r}.")
        return self._settled(request)

    def _involves_me(self, request) -> bool:
        me = self.actor.user_id
        if me in (request.requester_id, request.target_staff_id):
            return True
        return request.target_department is not None and request.target_department == \
            User.objects.for_school(self.school_id).filter(id=me).scalar("department").first()

    # answering

    def accept(self, request_id, reason: str | None = None) -> AlterationRequest:
        self.require_role({"staff"})
        request = self._settled(self.get(AlterationRequest, request_id, "alteration request"))
        acceptor = self._me()
        self._check_may_answer(request, acceptor)
        self._require_pending(request)
        if acceptor.id in request.declined_by:
            raise Conflict("You declined this request.", code="declined")
        self._check_departments(request.requester_department, acceptor.department)
        assignment = self._still_requesters(request)
        self._check_acceptor_can_take(assignment, acceptor)
        if not self._leave_pending(request, "accepting", accepted_by=acceptor.id,
                                   accepting_since=utcnow()):
            raise self._answered()
        try:
            self._move(request, acceptor)
        except DomainError as refused:
            self._fail(request, refused.code, from_status="accepting")
            raise
        request.accepted_by = acceptor.id
        finished = self._finish(request, reason, "accept", acceptor)
        # The request as its last write left it; read again only when another path finished it.
        return AlterationRequest._from_son(finished) if finished else request.reload()

    def _check_may_answer(self, request: AlterationRequest, me: User) -> None:
        if request.target_staff_id:
            allowed = request.target_staff_id == me.id
        else:
            allowed = (me.department is not None and me.department == request.target_department
                       and me.id != request.requester_id)
        if not allowed:
            raise Forbidden("Only the target of this request can answer it.", code="not_target")

    @staticmethod
    def _require_pending(request: AlterationRequest) -> None:
        if request.status != "pending":
            raise Conflict(f"This request is {request.status}, no longer pending.",
                           code="not_pending", details={"status": request.status})

    @staticmethod
    def _answered() -> Conflict:
        return Conflict("This request has already been answered.", code="not_pending")

    def _still_requesters(self, request: AlterationRequest) -> Assignment:
        assignment, slot = find_assignment_in_slot(self.school_id, request.assignment_id)
        # Kept for `_check_acceptor_can_take` of this request: the same slot, not read again.
        self._slot_read = slot
        if assignment is None or assignment.staff_id != request.requester_id:
            if not self._fail(request, "assignment_changed"):
                self._require_pending(request.reload())
            raise self._assignment_changed()
        return assignment

    def _check_acceptor_can_take(self, assignment: Assignment, acceptor: User) -> None:
        """Answer early; the move checks both again inside its slot write."""
        if self._would_swap_back(assignment, acceptor.id):
            raise self._swap_back()
        slot = getattr(self, "_slot_read", None)
        busy = (staff_booked(slot, acceptor.id, week=assignment.week)
                if slot is not None and slot.period_id == assignment.period_id
                and slot.day_of_week == assignment.day_of_week
                else staff_busy(self.school_id, assignment, acceptor.id))
        if busy:
            raise self._acceptor_booked()

    def _move(self, request: AlterationRequest, acceptor: User) -> None:
        """Step 2: hand the lesson to the acceptor inside its slot, naming this request."""
        def hand_over(slot, assignment):
            if assignment.swap_request_id == request.id:
                return None  # already moved by this request
            if assignment.staff_id != request.requester_id:
                raise self._assignment_changed()
            check_not_locked(assignment)
            if self._would_swap_back(assignment, acceptor.id):
                raise self._swap_back()
            if staff_booked(slot, acceptor.id, week=assignment.week):
                raise self._acceptor_booked()
            return replaced(slot, assignment, by=acceptor.id, staff_id=acceptor.id,
                            original_staff_id=request.requester_id,
                            assignment_type="peer_swap", swap_request_id=request.id,
                            override_notes=None)

        try:
            change_slot_of(self.school_id, request.assignment_id, hand_over)
        except NotFound:  # deleted meanwhile
            raise self._assignment_changed() from None

    @staticmethod
    def _swap_back() -> Conflict:
        return Conflict("This period came to the requester by swap from you; it cannot come "
                        "straight back.", code="circular_swap")

    @staticmethod
    def _acceptor_booked() -> Conflict:
        return Conflict("You already have an assignment in that slot.", code="slot_taken")

    @staticmethod
    def _assignment_changed() -> Conflict:
        return Conflict("The assignment changed hands meanwhile; the request has failed and "
                        "the timetable is untouched.", code="assignment_changed")

    def _leave_pending(self, request, to_status: str, **fields) -> bool:
        """The one way out of `pending`: True for the single caller whose update matched."""
        closing = {} if to_status == "accepting" else {"open_key": f"closed:{request.id}",
                                                        "responded_at": utcnow()}
        return self._transition(request, "pending", {"status": to_status, **closing, **fields})

    def _transition(self, request, from_status: str, fields: dict) -> bool:
        return update_if(AlterationRequest._get_collection(), self.school_id,
                         {"_id": request.id, "status": from_status},
                         {"$set": {**fields, "updated_at": utcnow()}})

    def _fail(self, request, code: str, from_status: str = "pending", action: str = "fail"
              ) -> bool:
        """Close a request as failed; the requester is told. False when it had already left
        `from_status`."""
        if not self._transition(request, from_status, {
                "status": "failed", "failure_code": code, "open_key": f"closed:{request.id}",
                "responded_at": utcnow()}):
            return False
        self.notify(request.requester_id, KIND,
                    "Your alteration request could not be completed: the assignment changed "
                    "hands meanwhile.", {"request_id": str(request.id), "failure_code": code})
        self.audit(action, KIND, request.id, before={"status": from_status},
                   after={"status": "failed", "failure_code": code})
        return True

    def _finish(self, request, reason, action: str, acceptor: User | None = None) -> dict | None:
        """Step 3, once the slot shows the move: the outcome can only be "accepted" now, so
        its audit event and notifications are written first, under ids derived from the
        request (whoever writes them again, after a crash or in parallel, adds nothing),
        then accepting -> accepted. True for the caller whose update made it, which alone
        tells the webhooks (whichever path finished it: the accept, a later reader, repair):
        the request as that update left it, else None. `acceptor`: already read."""
        if acceptor is None or acceptor.id != request.accepted_by:
            acceptor = User.objects.for_school(self.school_id).get(id=request.accepted_by)
        data = {"request_id": str(request.id), "assignment_id": str(request.assignment_id)}
        told = [Notification(user_id=request.requester_id, message=f"Your alteration request "
                             f"has been accepted by {acceptor.name}."),
                Notification(user_id=acceptor.id, message="The period is now on your timetable.")]
        event = audit_event(self.actor, self.school_id, action, KIND, request.id,
                            before={"status": request.status},
                            after={"status": "accepted", "accepted_by": acceptor.id,
                                   "assignment_id": request.assignment_id})
        event.id = outcome_id(request.id, "accepted", 0)
        insert_unique(AuditEvent._get_collection(), [event.to_mongo()])
        for number, notification in enumerate(told, start=1):
            notification.id = outcome_id(request.id, "accepted", number)
            notification.school_id, notification.kind, notification.data = \
                self.school_id, KIND, data
        insert_unique(Notification._get_collection(), [n.to_mongo() for n in told])
        made = update_where(AlterationRequest._get_collection(), self.school_id,
                            {"_id": request.id, "status": "accepting"},
                            {"$set": {"status": "accepted", "responded_by": acceptor.id,
                                      "responded_at": utcnow(), "response_reason": reason,
                                      "open_key": f"closed:{request.id}",
                                      "updated_at": utcnow()}})
        if made is not None:
            webhooks.emit(self.ctx, "swap.accepted", {"request_id": request.id,
                                                      "accepted_by": acceptor.id,
                                                      "assignment_id": request.assignment_id})
        return made

    def reject(self, request_id, reason: str | None = None) -> AlterationRequest:
        self.require_role({"staff"})
        request = self._settled(self.get(AlterationRequest, request_id, "alteration request"))
        me = self._me()
        self._check_may_answer(request, me)
        if request.target_department and not self._declined_by_all(request, me):
            return request.reload()
        if not self._close(request, "rejected", responded_by=me.id, response_reason=reason):
            raise self._answered()
        self.notify(request.requester_id, KIND,
                    f"Your alteration request has been rejected by {me.name}"
                    + (f": {reason}" if reason else "."), {"request_id": str(request.id)})
        self.audit("reject", KIND, request.id, before={"status": "pending"},
                   after={"status": "rejected", "response_reason": reason})
        webhooks.emit(self.ctx, "swap.rejected", {"request_id": request.id, "rejected_by": me.id})
        return request.reload()

    def _declined_by_all(self, request, me: User) -> bool:
        """Record that `me` declined a department request (one update filtered on status
        pending); True once every active member of the department has declined."""
        declined = update_where(AlterationRequest._get_collection(), self.school_id,
                                {"_id": request.id, "status": "pending"},
                                {"$addToSet": {"declined_by": me.id},
                                 "$set": {"updated_at": utcnow()}},
                                projection={"declined_by": 1})
        if declined is None:
            self._require_pending(request.reload())
            raise self._answered()
        self.audit("decline", KIND, request.id, after={"declined_by": me.id})
        members = department_members(self.school_id, request.target_department,
                                     request.requester_id)
        return set(members) <= set(declined["declined_by"])

    def cancel(self, request_id, reason: str | None = None) -> AlterationRequest:
        request = self.get_request(request_id)
        if request.requester_id != self.actor.user_id:
            raise Forbidden("Only the requester can cancel a request.", code="not_requester")
        if not self._close(request, "cancelled", response_reason=reason):
            raise self._answered()
        receivers = [request.target_staff_id] if request.target_staff_id else \
            department_members(self.school_id, request.target_department, request.requester_id)
        notify_many([Notification(user_id=user_id, school_id=self.school_id, kind=KIND,
                                  message="An alteration request sent to you has been "
                                          "cancelled.", data={"request_id": str(request.id)})
                     for user_id in receivers])
        self.audit("cancel", KIND, request.id, before={"status": "pending"},
                   after={"status": "cancelled"})
        webhooks.emit(self.ctx, "swap.cancelled", {"request_id": request.id})
        return request.reload()

    def _close(self, request, to_status: str, **fields) -> bool:
        """Move a pending request to `to_status`; False (409 for the caller) when it had
        already moved, with the status it has now when that is not `pending` any more."""
        if self._leave_pending(request, to_status, **fields):
            return True
        self._require_pending(request.reload())
        return False

    # settling interrupted accepts

    def repair_interrupted(self) -> list[AlterationRequest]:
        """Settle every request whose accept stopped between its steps (admins)."""
        self.require_admin()
        stuck = AlterationRequest.objects.for_school(self.school_id).filter(status="accepting")
        return [request.reload() for request in stuck if self._settle(request)]

    def _settled(self, request: AlterationRequest) -> AlterationRequest:
        """The request, settled first when it is an interrupted accept."""
        return request.reload() if self._settle(request) else request

    def _settle(self, request: AlterationRequest) -> bool:
        """Finish an `accepting` request from what its slot says: accepted when the lesson
        moved for it, failed when it did not and no live accept can still move it. True
        when this call settled it."""
        if request.status != "accepting":
            return False
        assignment = find_assignment(self.school_id, request.assignment_id)
        if assignment is not None and assignment.swap_request_id == request.id:
            return self._finish(request, None, "repair") is not None
        if request.accepting_since > utcnow() - timedelta(seconds=ACCEPTING_GRACE_SECONDS):
            return False
        return self._fail(request, "interrupted", from_status="accepting", action="repair")
