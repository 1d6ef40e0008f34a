"""Two-way exchanges: a staff member offers their lesson X for a colleague's lesson Y; when
the colleague accepts, X goes to them and Y to the requester, both or neither.

Three aggregates when the lessons are in two slots (the request, slot 1 holding X, slot 2
holding Y), written in this order by `_execute`:
  1. pending -> accepting   one update filtered on status "pending": exactly one of parallel
                            accepts, rejects and cancels wins; it keeps how both lessons were
  2. slot 1: X to the target, naming the exchange (`exchange_request_id`), when X is still
     the requester's, unlocked, and the target free in slot 1
  3. slot 2: THE DECISION. Y to the requester, naming the exchange, when X was handed over
     and Y is still the target's, unlocked, and the requester free in slot 2; otherwise Y
     records `exchange_refused_id` in the same write, so no later attempt can apply it
  4. when slot 2 refused: slot 1 is put back as it was (its filter: X names the exchange)
     and records `exchange_refused_id` too, so it is not handed over again
  5. accepting -> accepted, or -> failed with `failure_code`
Every step is idempotent (a write that finds its own mark does nothing), so whoever meets an
`accepting` request settles it by running the steps again: at once when slot 2 has decided,
after ACCEPTING_GRACE_SECONDS (no live accept can still be running) otherwise; `rota repair`
does the same. Lessons in one slot change in ONE compare-and-set of that slot.
"""

from __future__ import annotations

from datetime import timedelta

from mongoengine.errors import NotUniqueError
from mongoengine.queryset.visitor import Q

from documents.accounts import User
from documents.audit import AuditEvent, Notification
from documents.base import utcnow
from documents.connection import insert_unique
from documents.timetable import Assignment, ExchangeRequest
from service import webhooks
from service.aggregates import update_if
from service.audit import audit_event
from service.base import SchoolService
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import object_id
from service.pagination import Page, paginate
from service.timetable import permissions_of
from service.timetable_alterations import ACCEPTING_GRACE_SECONDS, outcome_id
from service.timetable_assignments import check_not_locked, lesson_label
from service.timetable_slots import (
    assignment_in,
    change_slot_of,
    find_assignment,
    replaced,
    staff_booked,
    staff_busy,
)

KIND = "timetable_exchange"
HANDOVER_FIELDS = ("staff_id", "assignment_type", "original_staff_id", "swap_request_id",
                   "override_notes")
FAILURES = {"assignment_changed": "one of the lessons changed hands meanwhile",
            "slot_taken": "one of you is now busy in the other slot",
            "locked": "one of the lessons has been locked",
            "interrupted": "it was interrupted"}


def handover_state(assignment: Assignment) -> dict:
    return {name: assignment[name] for name in HANDOVER_FIELDS}


def exchange_summary(request: ExchangeRequest) -> dict:
    return {"assignment_id": request.assignment_id,
            "target_assignment_id": request.target_assignment_id,
            "requester_id": request.requester_id, "target_staff_id": request.target_staff_id,
            "status": request.status, "reason": request.reason}


class ExchangeRequests(SchoolService):
    """Create, list, accept, reject and cancel two-way exchanges."""

    # creating

    def create(self, assignment_id, target_assignment_id, reason: str) -> ExchangeRequest:
        self.require_role({"staff"})
        me = User.objects.for_school(self.school_id).get(id=self.actor.user_id)
        mine = self._lesson(assignment_id, "assignment")
        theirs = self._lesson(target_assignment_id, "target assignment")
        if mine.staff_id != me.id:
            raise Conflict("You can offer only a lesson you hold.", code="not_your_assignment")
        if theirs.staff_id == me.id:
            raise ValidationFailed("The target lesson is yours already.",
                                   {"target_assignment_id": ["A colleague's lesson."]})
        check_not_locked(mine)
        check_not_locked(theirs)
        target = self.member(theirs.staff_id, "target_assignment_id", roles={"staff"})
        self._check_departments(me.department, target.department)
        if (mine.day_of_week, mine.period_id) != (theirs.day_of_week, theirs.period_id):
            if staff_busy(self.school_id, mine, target.id):
                raise Conflict(f"{target.name} already teaches in the slot of your lesson.",
                               code="slot_taken")
            if staff_busy(self.school_id, theirs, me.id):
                raise Conflict("You already teach in the slot of the lesson you ask for.",
                               code="slot_taken")
        request = self._insert(ExchangeRequest(
            school_id=self.school_id, assignment_id=mine.id, target_assignment_id=theirs.id,
            requester_id=me.id, target_staff_id=target.id, day_of_week=mine.day_of_week,
            period_id=mine.period_id, target_day_of_week=theirs.day_of_week,
            target_period_id=theirs.period_id, reason=reason, open_key=str(mine.id)))
        self.notify(target.id, KIND,
                    f"{me.name} offers you their lesson on {lesson_label(self.school_id, mine)} "
                    f"for yours on {lesson_label(self.school_id, theirs)}: {reason}",
                    {"request_id": str(request.id)})
        self.audit("create", KIND, request.id, after=exchange_summary(request))
        webhooks.emit(self.ctx, "swap.requested", {"request_id": request.id,
                                                   "kind": "exchange",
                                                   **exchange_summary(request)})
        return request

    def _lesson(self, assignment_id, what: str) -> Assignment:
        found = find_assignment(self.school_id, object_id(assignment_id, what))
        if found is None:
            raise NotFound(f"No {what} with id {assignment_id!r}.")
        return found

    def _check_departments(self, sending, receiving) -> None:
        permissions = permissions_of(self.school_id, [sending, receiving])
        for department, flag in ((sending, "allow_alterations"), (receiving, "allow_inbound")):
            if department in permissions and not getattr(permissions[department], flag):
                raise Forbidden(f"The {department} department may not take part in "
                                f"exchanges.", code="department_locked",
                                details={"department": department})

    def _insert(self, request: ExchangeRequest) -> ExchangeRequest:
        for attempt in range(2):
            try:
                return request.save(force_insert=True)
            except NotUniqueError:
                request.id = None
                blocker = ExchangeRequest.objects.for_school(self.school_id).filter(
                    open_key=request.open_key).first()
                if attempt == 0 and (blocker is None or self._settle(blocker)):
                    continue
        raise Conflict("An exchange offering this lesson is already open.",
                       code="request_pending")

    # reading

    def list(self, box: str = "all", status: str | None = None, page: int = 1,
             page_size: int = 50) -> Page:
        found = ExchangeRequest.objects.for_school(self.school_id)
        if box != "all" or not self.actor.is_admin:
            me = self.actor.user_id
            boxes = {"incoming": Q(target_staff_id=me), "outgoing": Q(requester_id=me)}
            found = found.filter(boxes.get(box, boxes["incoming"] | boxes["outgoing"]))
        if status:
            found = found.filter(status=status)
        return paginate(found.order_by("-created_at", "-id"), page, page_size)

    def get_request(self, request_id) -> ExchangeRequest:
        request = self.get(ExchangeRequest, request_id, "exchange request")
        if not self.actor.is_admin and self.actor.user_id not in (request.requester_id,
                                                                  request.target_staff_id):
            raise NotFound(f"No exchange request with id {request_id!r}.")
        return self._settled(request)

    # answering

    def accept(self, request_id, reason: str | None = None) -> ExchangeRequest:
        self.require_role({"staff"})
        request = self._settled(self.get(ExchangeRequest, request_id, "exchange request"))
        self._check_target(request)
        self._require_pending(request)
        mine = find_assignment(self.school_id, request.assignment_id)
        theirs = find_assignment(self.school_id, request.target_assignment_id)
        if mine is None or theirs is None or mine.staff_id != request.requester_id \
                or theirs.staff_id != request.target_staff_id:
            if self._close(request, "failed", failure_code="assignment_changed"):
                self.audit("fail", KIND, request.id, before={"status": "pending"},
                           after={"status": "failed", "failure_code": "assignment_changed"})
                self.notify(request.requester_id, KIND, "Your exchange could not be made: "
                            f"{FAILURES['assignment_changed']}.", {"request_id": str(request.id)})
            raise self._failure("assignment_changed")
        if not self._leave_pending(request, "accepting", accepting_since=utcnow(),
                                   responded_by=self.actor.user_id, response_reason=reason,
                                   assignment_before=handover_state(mine),
                                   target_before=handover_state(theirs)):
            raise self._answered()
        request.reload()
        failure = self._execute(request)
        self._conclude(request, failure)
        if failure:
            raise self._failure(failure)
        webhooks.emit(self.ctx, "swap.accepted", {
            "request_id": request.id, "kind": "exchange", "accepted_by": self.actor.user_id,
            "assignment_id": request.assignment_id,
            "target_assignment_id": request.target_assignment_id})
        return request.reload()

    def reject(self, request_id, reason: str | None = None) -> ExchangeRequest:
        self.require_role({"staff"})
        request = self._settled(self.get(ExchangeRequest, request_id, "exchange request"))
        self._check_target(request)
        if not self._close(request, "rejected", responded_by=self.actor.user_id,
                           response_reason=reason):
            raise self._answered()
        self.notify(request.requester_id, KIND, "Your exchange offer has been declined"
                    + (f": {reason}" if reason else "."), {"request_id": str(request.id)})
        self.audit("reject", KIND, request.id, before={"status": "pending"},
                   after={"status": "rejected", "response_reason": reason})
        webhooks.emit(self.ctx, "swap.rejected", {"request_id": request.id, "kind": "exchange",
                                                  "rejected_by": self.actor.user_id})
        return request.reload()

    def cancel(self, request_id, reason: str | None = None) -> ExchangeRequest:
        request = self.get_request(request_id)
        if request.requester_id != self.actor.user_id:
            raise Forbidden("Only the requester can cancel an exchange.", code="not_requester")
        if not self._close(request, "cancelled", response_reason=reason):
            raise self._answered()
        self.notify(request.target_staff_id, KIND, "An exchange offered to you has been "
                    "cancelled.", {"request_id": str(request.id)})
        self.audit("cancel", KIND, request.id, before={"status": "pending"},
                   after={"status": "cancelled"})
        webhooks.emit(self.ctx, "swap.cancelled", {"request_id": request.id,
                                                   "kind": "exchange"})
        return request.reload()

    def _check_target(self, request: ExchangeRequest) -> None:
        if request.target_staff_id != self.actor.user_id:
            raise Forbidden("Only the colleague asked can answer this exchange.",
                            code="not_target")

    @staticmethod
    def _require_pending(request: ExchangeRequest) -> None:
        if request.status != "pending":
            raise Conflict(f"This exchange is {request.status}, no longer pending.",
                           code="not_pending", details={"status": request.status})

    @staticmethod
    def _answered() -> Conflict:
        return Conflict("This exchange has already been answered.", code="not_pending")

    @staticmethod
    def _failure(code: str) -> Conflict | Forbidden:
        error = Forbidden if code == "locked" else Conflict
        return error(f"The exchange failed: {FAILURES.get(code, code)}; both lessons stay "
                     f"where they were.", code=code)

    def _leave_pending(self, request, to_status: str, **fields) -> bool:
        closing = {} if to_status == "accepting" else {"open_key": f"closed:{request.id}",
                                                        "responded_at": utcnow()}
        return self._transition(request, "pending", {"status": to_status, **closing, **fields})

    def _close(self, request, to_status: str, **fields) -> bool:
        if self._leave_pending(request, to_status, **fields):
            return True
        self._require_pending(request.reload())
        return False

    def _transition(self, request, from_status: str, fields: dict) -> bool:
        return update_if(ExchangeRequest._get_collection(), self.school_id,
                         {"_id": request.id, "status": from_status},
                         {"$set": {**fields, "updated_at": utcnow()}})

    # executing (steps 2-4), idempotent

    def _execute(self, request: ExchangeRequest) -> str | None:
        """Hand both lessons over or neither; None when they changed hands, else why not."""
        if (request.day_of_week, request.period_id) == (request.target_day_of_week,
                                                        request.target_period_id):
            return self._exchange_in_one_slot(request)
        failure = self._decide_second(request, self._hand_over_first(request))
        if failure:
            self._put_first_back(request)
        return failure

    def _refusal(self, request, lesson: Assignment, holder, receiver, slot) -> str | None:
        """Why `lesson` cannot go from `holder` to `receiver` in `slot` now (None: it can)."""
        if lesson.staff_id != holder:
            return "assignment_changed"
        if lesson.is_locked:
            return "locked"
        if staff_booked(slot, receiver, besides=lesson.id, week=lesson.week):
            return "slot_taken"
        return None

    @staticmethod
    def _handed(lesson: Assignment, request, receiver, slot) -> dict:
        return replaced(slot, lesson, by=request.responded_by, staff_id=receiver,
                        original_staff_id=lesson.staff_id, assignment_type="peer_swap",
                        swap_request_id=None, override_notes=None,
                        exchange_request_id=request.id)

    def _exchange_in_one_slot(self, request) -> str | None:
        outcome = []

        def exchange(slot, _):
            mine = assignment_in(slot, request.assignment_id)
            theirs = assignment_in(slot, request.target_assignment_id)
            if theirs is None or mine.exchange_refused_id == request.id:
                outcome[:] = ["assignment_changed"]
                return None
            if mine.exchange_request_id == request.id:
                outcome[:] = [None]
                return None
            failure = self._one_slot_refusal(request, mine, theirs)
            outcome[:] = [failure]
            if failure:
                return replaced(slot, mine, exchange_refused_id=request.id)
            self._handed(mine, request, request.target_staff_id, slot)
            return self._handed(theirs, request, request.requester_id, slot)

        try:
            change_slot_of(self.school_id, request.assignment_id, exchange)
        except NotFound:
            return "assignment_changed"
        return outcome[0]

    @staticmethod
    def _one_slot_refusal(request, mine, theirs) -> str | None:
        if mine.staff_id != request.requester_id or theirs.staff_id != request.target_staff_id:
            return "assignment_changed"
        return "locked" if mine.is_locked or theirs.is_locked else None

    def _hand_over_first(self, request) -> str | None:
        """Step 2: None when X is (now) handed over for this exchange, else why not."""
        refusal = []

        def hand_over(slot, lesson):
            if lesson.exchange_request_id == request.id:
                refusal[:] = [None]
                return None
            refusal[:] = ["assignment_changed" if lesson.exchange_refused_id == request.id
                          else self._refusal(request, lesson, request.requester_id,
                                             request.target_staff_id, slot)]
            if refusal[0]:
                return None
            return self._handed(lesson, request, request.target_staff_id, slot)

        try:
            change_slot_of(self.school_id, request.assignment_id, hand_over)
        except NotFound:
            return "assignment_changed"
        return refusal[0]

    def _decide_second(self, request, first_refusal: str | None) -> str | None:
        """Step 3, the decision: Y handed over (None) or refused for good (why)."""
        decided = []

        def decide(slot, lesson):
            if lesson.exchange_request_id == request.id:
                decided[:] = [None]
                return None
            if lesson.exchange_refused_id == request.id:
                decided[:] = ["assignment_changed"]  # decided before, by another caller
                return None
            failure = first_refusal or self._refusal(
                request, lesson, request.target_staff_id, request.requester_id, slot)
            decided[:] = [failure]
            if failure:
                return replaced(slot, lesson, exchange_refused_id=request.id)
            return self._handed(lesson, request, request.requester_id, slot)

        try:
            change_slot_of(self.school_id, request.target_assignment_id, decide)
        except NotFound:
            return "assignment_changed"
        return decided[0]

    def _put_first_back(self, request) -> None:
        """Step 4: X as it was before the exchange, marked refused so it stays so."""
        def put_back(slot, lesson):
            if lesson.exchange_refused_id == request.id:
                return None
            if lesson.exchange_request_id == request.id \
                    and lesson.staff_id == request.target_staff_id:
                before = {name: request.assignment_before.get(name) for name in HANDOVER_FIELDS}
                return replaced(slot, lesson, **before, exchange_request_id=None,
                                exchange_refused_id=request.id)
            if lesson.exchange_request_id == request.id:
                return None  # handed on since: an admin resolves it (see the audit)
            return replaced(slot, lesson, exchange_refused_id=request.id)

        try:
            change_slot_of(self.school_id, request.assignment_id, put_back)
        except NotFound:
            pass

    # concluding (step 5) and settling interrupted accepts

    def _conclude(self, request, failure: str | None) -> bool:
        """accepting -> accepted or failed. The outcome is final once slot 2 decided, so its
        audit event and notifications are written first under ids derived from the request
        (whoever concludes again adds nothing); True for the caller whose update made it."""
        outcome = "failed" if failure else "accepted"
        data = {"request_id": str(request.id), "assignment_id": str(request.assignment_id),
                "target_assignment_id": str(request.target_assignment_id)}
        if failure:
            told = [(request.requester_id, f"Your exchange could not be made: "
                     f"{FAILURES.get(failure, failure)}; both lessons stay where they were.")]
        else:
            told = [(request.requester_id, "Your exchange has been accepted: the lessons "
                                           "have changed hands."),
                    (request.target_staff_id, "The exchanged lesson is now on your timetable.")]
        event = audit_event(self.actor, self.school_id, "accept" if not failure else "fail",
                            KIND, request.id, before={"status": "accepting"},
                            after={"status": outcome, "failure_code": failure})
        event.id = outcome_id(request.id, f"exchange-{outcome}", 0)
        insert_unique(AuditEvent._get_collection(), [event.to_mongo()])
        notes = [Notification(id=outcome_id(request.id, f"exchange-{outcome}", number),
                              user_id=user_id, school_id=self.school_id, kind=KIND,
                              message=message, data=data)
                 for number, (user_id, message) in enumerate(told, start=1)]
        insert_unique(Notification._get_collection(), [n.to_mongo() for n in notes])
        fields = {"status": outcome, "open_key": f"closed:{request.id}",
                  "responded_at": utcnow()}
        if failure:
            fields["failure_code"] = failure
        return self._transition(request, "accepting", fields)

    def repair_interrupted(self) -> list[ExchangeRequest]:
        """Settle every exchange whose accept stopped between its steps (admins)."""
        self.require_admin()
        stuck = ExchangeRequest.objects.for_school(self.school_id).filter(status="accepting")
        return [request.reload() for request in stuck if self._settle(request)]

    def _settled(self, request: ExchangeRequest) -> ExchangeRequest:
        return request.reload() if self._settle(request) else request

    def _settle(self, request: ExchangeRequest) -> bool:
        """Finish an `accepting` exchange: at once when slot 2 has decided, after the grace
        period otherwise (rolled forward when both writes can still be made, else back)."""
        if request.status != "accepting":
            return False
        decided = find_assignment(self.school_id, request.target_assignment_id)
        has_decided = decided is None or request.id in (decided.exchange_request_id,
                                                       decided.exchange_refused_id)
        if not has_decided and request.accepting_since > utcnow() - timedelta(
                seconds=ACCEPTING_GRACE_SECONDS):
            return False
        return self._conclude(request, self._execute(request))
