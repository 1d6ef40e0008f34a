"""Alteration requests: a staff member hands one of their assignments to a named colleague or
to a whole department (first eligible acceptor wins).

Every way out of `pending` (accept, reject, cancel, fail) starts by inserting the request's
decision lock (RevisionLock version 1, unique): exactly one caller gets it, even across
workers on FerretDB, where a filter on status alone would let two updates through.
Accept is ordered so that no crash can leave two owners and every interruption is visible:
  1. the decision lock, then pending -> accepting
  2. the assignment moves   (revision lock + update_one filtered on staff_id=requester and the
                             version read; the staff slot index refuses a booked acceptor)
  3. accepting -> accepted  (or -> failed with `failure_code` when step 2 could not happen)
An open request whose decision lock is older than ACCEPTING_GRACE_SECONDS was interrupted
between steps; `repair_interrupted` settles it from the assignment's `swap_request_id`.
"""

from __future__ import annotations

from datetime import timedelta

from mongoengine.errors import NotUniqueError, OperationError
from mongoengine.queryset.visitor import Q

from documents.accounts import User
from documents.audit import Notification
from documents.base import utcnow
from documents.connection import is_duplicate_key
from documents.timetable import OPEN_REQUEST_STATUSES, AlterationRequest, Assignment, RevisionLock
from service.base import SchoolService
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.notifications import notify_many
from service.pagination import Page, paginate
from service.timetable import permissions_of, slot_label
from service.timetable_claims import revise, take_lock

# Longer than a worker's request timeout, so a live accept is never "repaired" under it.
ACCEPTING_GRACE_SECONDS = 120
KIND = "timetable_alteration"


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
        requester = self._me()
        assignment = self.get(Assignment, assignment_id, "assignment")
        if assignment.staff_id != requester.id:
            raise Conflict("Only the staff member holding an assignment can request to hand it "
                           "over.", code="not_your_assignment")
        target = self._named_target(target_staff_id, requester) if target_staff_id else None
        department = target.department if target else target_department
        self._check_departments(requester.department, department)
        if target and self._would_swap_back(assignment, target.id):
            raise Conflict("You received this period by swap from this colleague; it cannot be "
                           "sent straight back.", code="circular_swap")
        request = self._insert(AlterationRequest(
            school_id=self.school_id, assignment_id=assignment.id,
            day_of_week=assignment.day_of_week, period_id=assignment.period_id,
            requester_id=requester.id, requester_department=requester.department,
            target_staff_id=target.id if target else None,
            target_department=None if target else target_department,
            reason=reason, open_key=str(assignment.id)))
        self._announce_new(request, requester, assignment)
        self.audit("create", KIND, request.id, after=request_summary(request))
        return request

    def _me(self) -> User:
        return User.objects.for_school(self.school_id).get(id=self.actor.user_id)

    def _named_target(self, target_staff_id, requester: User) -> User:
        target = self.member(target_staff_id, "target_staff_id", roles={"staff"})
        if target.id == requester.id:
            raise ValidationFailed("You cannot send a request to yourself.",
                                   {"target_staff_id": ["Must be a colleague."]})
        return target

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
        if blocker is None:
            return True
        if self._repair(blocker):
            return True
        owner = Assignment.objects.for_school(self.school_id).filter(
            id=assignment_id).scalar("staff_id").first()
        if blocker.status != "pending" or owner == blocker.requester_id:
            return False
        return self._fail(blocker, "assignment_changed", decided=False)

    def _announce_new(self, request, requester: User, assignment: Assignment) -> None:
        if request.target_staff_id:
            receivers = [request.target_staff_id]
        else:
            receivers = list(User.objects.for_school(self.school_id).filter(
                role="staff", is_active=True, department=request.target_department,
                id__ne=requester.id).scalar("id"))
        message = (f"{requester.name} has asked you to take their {slot_label(assignment)} "
                   f"period: {request.reason}")
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
        if department:
            incoming |= Q(target_department=department, requester_id__ne=me)
        outgoing = Q(requester_id=me)
        return {"incoming": incoming, "outgoing": outgoing}.get(box, incoming | outgoing)

    def get_request(self, request_id) -> AlterationRequest:
        request = self.get(AlterationRequest, request_id, "alteration request")
        if not self.actor.is_admin and not self._involves_me(request):
            raise NotFound(f"No alteration request with id {request_id!r}.")
        return request

    def _involves_me(self, request) -> bool:
        me = self.actor.user_id
        if me in (request.requester_id, request.target_staff_id):
            return True
        return request.target_department is not None and request.target_department == \
            User.objects.for_school(self.school_id).filter(id=me).scalar("department").first()

    # answering

    def accept(self, request_id, reason: str | None = None) -> AlterationRequest:
        self.require_role({"staff"})
        request = self.get(AlterationRequest, request_id, "alteration request")
        acceptor = self._me()
        self._check_may_answer(request, acceptor)
        self._require_pending(request)
        self._check_departments(request.requester_department, acceptor.department)
        assignment = self._still_requesters(request)
        self._check_acceptor_can_take(assignment, acceptor)
        self._claim(request, acceptor)
        self._move(request, assignment, acceptor)
        return self._finish(request, acceptor, reason)

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

    def _still_requesters(self, request: AlterationRequest) -> Assignment:
        assignment = Assignment.objects.for_school(self.school_id).filter(
            id=request.assignment_id).first()
        if assignment is None or assignment.staff_id != request.requester_id:
            if not self._fail(request, "assignment_changed", decided=False):
                self._require_pending(request.reload())
            raise self._assignment_changed()
        return assignment

    def _check_acceptor_can_take(self, assignment: Assignment, acceptor: User) -> None:
        if self._would_swap_back(assignment, acceptor.id):
            raise Conflict("This period came to the requester by swap from you; it cannot come "
                           "straight back.", code="circular_swap")
        busy = Assignment.objects.for_school(self.school_id).filter(
            staff_id=acceptor.id, day_of_week=assignment.day_of_week,
            period_id=assignment.period_id).count()
        if busy:
            raise Conflict("You already have an assignment in that slot.", code="slot_taken")

    def _decide(self, request: AlterationRequest) -> bool:
        """Take the one right to move this request out of `pending`."""
        return take_lock(self.school_id, request.id, 1) is not None

    def _claim(self, request: AlterationRequest, acceptor: User) -> None:
        if not self._decide(request):
            raise Conflict("This request has already been answered.", code="not_pending")
        AlterationRequest.objects.for_school(self.school_id).filter(id=request.id).update_one(
            set__status="accepting", set__accepted_by=acceptor.id,
            set__accepting_since=utcnow(), set__updated_at=utcnow())

    def _move(self, request: AlterationRequest, assignment: Assignment, acceptor: User) -> None:
        try:
            moved = revise(Assignment, self.school_id, assignment, lambda found: found.update_one(
                set__staff_id=acceptor.id, set__original_staff_id=request.requester_id,
                set__assignment_type="peer_swap", set__swap_request_id=request.id,
                unset__override_notes=True, inc__version=1, set__updated_at=utcnow()),
                staff_id=request.requester_id)
        except (NotUniqueError, OperationError) as exc:
            if not is_duplicate_key(exc):
                raise
            self._fail(request, "slot_taken", decided=True)
            raise Conflict("You already have an assignment in that slot.",
                           code="slot_taken") from None
        if not moved:
            self._fail(request, "assignment_changed", decided=True)
            raise self._assignment_changed()

    def _fail(self, request, code: str, decided: bool) -> bool:
        """Close a request as failed (taking its decision unless already `decided` by this
        caller); the requester is told. False when someone else decided it first."""
        if not decided and not self._decide(request):
            return False
        AlterationRequest.objects.for_school(self.school_id).filter(id=request.id).update_one(
            set__status="failed", set__failure_code=code, set__open_key=f"closed:{request.id}",
            set__responded_at=utcnow(), set__updated_at=utcnow())
        self.notify(request.requester_id, KIND,
                    "Your alteration request could not be completed: the assignment changed "
                    "hands meanwhile.", {"request_id": str(request.id), "failure_code": code})
        self.audit("fail", KIND, request.id, before={"status": request.status},
                   after={"status": "failed", "failure_code": code})
        return True

    def _finish(self, request, acceptor: User, reason) -> AlterationRequest:
        AlterationRequest.objects.for_school(self.school_id).filter(id=request.id).update_one(
            set__status="accepted", set__responded_by=acceptor.id, set__responded_at=utcnow(),
            set__response_reason=reason, set__open_key=f"closed:{request.id}",
            set__updated_at=utcnow())
        data = {"request_id": str(request.id), "assignment_id": str(request.assignment_id)}
        self.notify(request.requester_id, KIND,
                    f"Your alteration request has been accepted by {acceptor.name}.", data)
        self.notify(acceptor.id, KIND, "The period is now on your timetable.", data)
        self.audit("accept", KIND, request.id, before={"status": "pending"},
                   after={"status": "accepted", "accepted_by": acceptor.id,
                          "assignment_id": request.assignment_id})
        return request.reload()

    @staticmethod
    def _assignment_changed() -> Conflict:
        return Conflict("The assignment changed hands meanwhile; the request has failed and "
                        "the timetable is untouched.", code="assignment_changed")

    def reject(self, request_id, reason: str | None = None) -> AlterationRequest:
        self.require_role({"staff"})
        request = self.get(AlterationRequest, request_id, "alteration request")
        me = self._me()
        self._check_may_answer(request, me)
        if not self._close(request, "rejected", responded_by=me.id, response_reason=reason):
            self._require_pending(request.reload())
            raise Conflict("This request has already been answered.", code="not_pending")
        self.notify(request.requester_id, KIND,
                    f"Your alteration request has been rejected by {me.name}"
                    + (f": {reason}" if reason else "."), {"request_id": str(request.id)})
        self.audit("reject", KIND, request.id, before={"status": "pending"},
                   after={"status": "rejected", "response_reason": reason})
        return request.reload()

    def cancel(self, request_id, reason: str | None = None) -> AlterationRequest:
        request = self.get_request(request_id)
        if request.requester_id != self.actor.user_id:
            raise Forbidden("Only the requester can cancel a request.", code="not_requester")
        if not self._close(request, "cancelled", response_reason=reason):
            self._require_pending(request.reload())
            raise Conflict("This request has already been answered.", code="not_pending")
        if request.target_staff_id:
            self.notify(request.target_staff_id, KIND,
                        "An alteration request sent to you has been cancelled.",
                        {"request_id": str(request.id)})
        self.audit("cancel", KIND, request.id, before={"status": "pending"},
                   after={"status": "cancelled"})
        return request.reload()

    def _close(self, request, to_status: str, **fields) -> bool:
        """Move a pending request to `to_status` once; False when it had already moved."""
        if request.status != "pending" or not self._decide(request):
            return False
        updates = {f"set__{name}": value for name, value in fields.items()}
        AlterationRequest.objects.for_school(self.school_id).filter(id=request.id).update_one(
            set__status=to_status, set__open_key=f"closed:{request.id}",
            set__responded_at=utcnow(), set__updated_at=utcnow(), **updates)
        return True

    # repair

    def repair_interrupted(self) -> list[AlterationRequest]:
        """Settle requests whose accept stopped between its steps (admins)."""
        self.require_admin()
        decided = RevisionLock.objects.for_school(self.school_id).filter(
            version=1, created_at__lt=self._cutoff()).scalar("target_id")
        stuck = list(AlterationRequest.objects.for_school(self.school_id).filter(
            status__in=OPEN_REQUEST_STATUSES, id__in=list(decided)))
        return [request.reload() for request in stuck if self._repair(request)]

    @staticmethod
    def _cutoff():
        return utcnow() - timedelta(seconds=ACCEPTING_GRACE_SECONDS)

    def _repair(self, request: AlterationRequest) -> bool:
        """Settle an open request whose decision was taken long ago but never finished."""
        decision = RevisionLock.objects.for_school(self.school_id).filter(
            target_id=request.id, version=1).first()
        if decision is None or decision.created_at > self._cutoff():
            return False
        assignment = Assignment.objects.for_school(self.school_id).filter(
            id=request.assignment_id).first()
        moved = (assignment is not None and assignment.swap_request_id == request.id
                 and assignment.staff_id == request.accepted_by)
        outcome = ({"status": "accepted", "responded_by": request.accepted_by} if moved
                   else {"status": "failed", "failure_code": "interrupted"})
        updates = {f"set__{name}": value for name, value in outcome.items()}
        settled = AlterationRequest.objects.for_school(self.school_id).filter(
            id=request.id, status__in=OPEN_REQUEST_STATUSES).update_one(
            set__open_key=f"closed:{request.id}", set__responded_at=utcnow(),
            set__updated_at=utcnow(), **updates)
        if settled:
            self.audit("repair", KIND, request.id, before={"status": request.status},
                       after=outcome)
        return bool(settled)
