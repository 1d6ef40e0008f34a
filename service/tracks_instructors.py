"""The instructors of a track: adding, changing (links, cap, weight) and removing them.

Each is one compare-and-set of the track (see `service.tracks`). A track keeps at least one
instructor, with or without students. Removing an instructor rehomes their students in the
same update, to the least loaded by weight of those who stay; their pinned students need a
decision (`move_pinned_to`, or `unpin`). On an auto-balancing project (its own switch, its
sub-project's or the parent project's) every change of the instructors also rebalances the
unpinned students in the same update.
"""

from __future__ import annotations

from documents.base import utcnow
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.tracks import (
    INSTRUCTOR_ROLES,
    TrackService,
    instructor_entry,
    instructor_view,
    settings_summary,
)
from service.tracks_balancing import (
    balancing_changes,
    instructor_index,
    loads_of,
    merged,
    moved_update,
    orphan_changes,
    with_changes,
)


def last_instructor() -> Conflict:
    return Conflict("A track keeps at least one instructor.", code="last_instructor")


class TrackInstructors(TrackService):
    """Instructors of one school's tracks: admins change them."""

    def add(self, track_id, user_id, **settings) -> dict:
        self.require_admin()
        track = self._track(track_id)
        user = self.member(user_id, "user_id", roles=INSTRUCTOR_ROLES)
        entry = instructor_entry({**settings, "user_id": user.id}, self.actor.user_id, utcnow())
        auto = self._auto_balances(track)
        now = utcnow()

        def plan(current: dict) -> dict:
            if instructor_index(current, user.id) is not None:
                raise Conflict(f"{user.name} already teaches this track.",
                               code="already_instructor")
            update = {"$push": {"instructors": entry}}
            if auto:
                grown = {**current, "instructors": [*current["instructors"], entry]}
                moves = moved_update(current, balancing_changes(grown), now, self.actor.user_id)
                if moves:
                    update["$set"] = moves
            return update

        before, after = self._change(track["_id"], plan)
        self.audit("add_instructor", "track", track["_id"], after=settings_summary(entry))
        self._record_moves(before, after, "balance")
        self.notify(user.id, "track_instructor_added",
                    f"You now teach the track {track['name']}.", {"track_id": str(track["_id"])})
        return instructor_view(entry, user, loads_of(after)[user.id])

    def update(self, track_id, user_id, **settings) -> dict:
        """Changes links, cap or weight (fields left out stay). A lowered cap moves nobody,
        unless the project auto-balances (then the track rebalances in the same update)."""
        self.require_admin()
        instructor_id = object_id(user_id, "instructor")
        auto = self._auto_balances(self._track(track_id))
        now = utcnow()

        def plan(current: dict) -> dict | None:
            index = instructor_index(current, instructor_id)
            if index is None:
                raise NotFound(f"No instructor {user_id!r} on this track.")
            if not settings:
                return None
            update = {"$set": {f"instructors.{index}.{name}": value
                               for name, value in settings.items()}}
            if auto:
                instructors = list(current["instructors"])
                instructors[index] = {**instructors[index], **settings}
                update["$set"].update(moved_update(current, balancing_changes(
                    {**current, "instructors": instructors}), now, self.actor.user_id))
            return update

        before, after = self._change(track_id, plan)
        old = before["instructors"][instructor_index(before, instructor_id)]
        new = after["instructors"][instructor_index(after, instructor_id)]
        if after is not before:
            self.audit("update_instructor", "track", after["_id"], before=settings_summary(old),
                       after=settings_summary(new))
            self._record_moves(before, after, "balance")
        user = self._users_by_id([instructor_id]).get(instructor_id)
        return instructor_view(new, user, loads_of(after)[instructor_id])

    def remove(self, track_id, user_id, unpin: bool = False, move_pinned_to=None) -> None:
        """Their students move to the least loaded by weight of the instructors who stay, in
        the same update. Their pinned students stay pinned and go to `move_pinned_to`, or,
        with `unpin`, are unpinned and move like the others; with neither, 409
        `pinned_students` names them. The last instructor stays (409 `last_instructor`)."""
        self.require_admin()
        leaving = object_id(user_id, "instructor")
        target = (field_object_id(move_pinned_to, "move_pinned_to")
                  if move_pinned_to is not None else None)
        auto = self._auto_balances(self._track(track_id))
        now = utcnow()

        def plan(current: dict) -> dict:
            if instructor_index(current, leaving) is None:
                raise NotFound(f"No instructor {user_id!r} on this track.")
            if len(current["instructors"]) == 1:
                raise last_instructor()
            changes = self._rehoming(current, leaving, target, unpin)
            if auto:
                stay = with_changes({**current, "instructors": [
                    i for i in current["instructors"] if i["user_id"] != leaving]},
                    changes, pinned=False if unpin else None)
                changes = merged(changes, balancing_changes(stay))
            update = {"$pull": {"instructors": {"user_id": leaving}}}
            moves = moved_update(current, changes, now, self.actor.user_id,
                                 pinned=False if unpin else None)
            return {**update, "$set": moves} if moves else update

        before, after = self._change(track_id, plan)
        removed = before["instructors"][instructor_index(before, leaving)]
        self.audit("remove_instructor", "track", before["_id"],
                   before=settings_summary(removed),
                   after={"students_moved": loads_of(before)[leaving]})
        self._record_moves(before, after, "rehome")
        self.notify(leaving, "track_instructor_removed",
                    f"You no longer teach the track {before['name']}.",
                    {"track_id": str(before["_id"])})

    @staticmethod
    def _rehoming(current: dict, leaving, target, unpin: bool) -> list:
        pinned = [e["student_id"] for e in current.get("enrolments") or []
                  if e["instructor_id"] == leaving and e.get("pinned")]
        if not pinned or unpin:
            return orphan_changes(current, leaving)
        if target is None:
            raise Conflict("Some of this instructor's students are pinned to them: name "
                           "move_pinned_to, or unpin=true to place them like the others.",
                           code="pinned_students",
                           details={"student_ids": [str(s) for s in pinned]})
        index = instructor_index(current, target)
        if index is None or target == leaving:
            raise ValidationFailed("move_pinned_to does not teach this track.",
                                   {"move_pinned_to": ["Not another instructor of this track."]})
        cap = current["instructors"][index].get("max_students")
        if cap is not None and loads_of(current)[target] + len(pinned) > cap:
            raise Conflict("move_pinned_to has no room for them.", code="instructor_full",
                           details={"instructor_id": str(target), "max_students": cap,
                                    "students": loads_of(current)[target],
                                    "requested": len(pinned)})
        return orphan_changes(current, leaving, pinned_to=target)
