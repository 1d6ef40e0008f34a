"""Weekly groups for the people who run them: unassigning, waitlists, swaps, change sets
and their undo, over HTTP."""

from __future__ import annotations

from documents.audit import AuditEvent, Notification
from tests.test_weekly_groups import (
    group_in,
    manager,
    move,
    names_in,
    new_group,
    new_program,
    new_students,
    view,
)


def changes_of(client, world, program, role="admin") -> list[dict]:
    response = client.get(world.url(f"/programs/{program.id}/changes"),
                          headers=world.headers(role))
    assert response.status_code == 200, response.json
    return response.json["items"]


def undo(client, world, program, change_id, role="admin"):
    return client.post(world.url(f"/programs/{program.id}/changes/{change_id}/undo"),
                       headers=world.headers(role))


def post_move(client, world, program, week, students, group_id, role="admin", **extra):
    return client.post(world.url(f"/programs/{program.id}/weeks/{week}/moves"),
                       json={"student_ids": [str(s["id"]) for s in students],
                             "group_id": group_id, **extra}, headers=world.headers(role))


def swap(client, world, program, week, a, b, role="staff"):
    return client.post(world.url(f"/programs/{program.id}/weeks/{week}/swaps"),
                       json={"student_a": str(a["id"]), "student_b": str(b["id"])},
                       headers=world.headers(role))


def waitlist(client, world, program, week, group):
    response = client.get(world.url(f"/programs/{program.id}/weeks/{week}/groups/"
                                    f"{group.id}/waitlist"), headers=world.headers("staff"))
    assert response.status_code == 200, response.json
    return [s["name"] for s in response.json["students"]]


# ------------------------------------------------------------------------- unassign

def test_unassigning_puts_students_back_among_the_unassigned(client, world):
    program = new_program(world)
    group = new_group(world, program, "Blues", max_size=3)
    kids = new_students(world, program, 3)
    move(client, world, program, 1, kids, group)
    response = post_move(client, world, program, 1, kids[:2], None, role="staff")
    assert response.status_code == 200, response.json
    assert response.json["group_id"] is None and response.json["capacity"] is None
    week = view(client, world, program, 1)
    assert names_in(group_in(week, group)) == ["Kid 002"]
    assert [s["name"] for s in week["unassigned_students"]] == ["Kid 000", "Kid 001"]


def test_a_move_into_a_group_that_starts_later_says_so(client, world):
    program = new_program(world, max_weeks=2)
    manager(world).add_student(program.id, "Kid", "Red")
    generated = client.post(world.url(f"/programs/{program.id}/groups/generate"),
                            json={"week_number": 2}, headers=world.headers("admin")).json
    later = generated["groups"][0]["group_id"]
    kid = manager(world).list_students(program.id).items
    response = post_move(client, world, program, 1, kid, later)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "group_not_in_week"
    assert "starts in a later week" in response.json["error"]["message"]
    foreign = new_group(world, new_program(world, name="Other"), "Elsewhere")
    other = post_move(client, world, program, 1, kid, str(foreign.id))
    assert other.json["error"]["code"] == "group_not_in_program"


# ------------------------------------------------------------------------- waitlist

def test_a_full_group_waitlists_and_seats_the_first_waiting_when_a_seat_frees(client, world):
    program = new_program(world)
    full = new_group(world, program, "Full", max_size=2)
    other = new_group(world, program, "Other", max_size=8)
    seated = new_students(world, program, 2, prefix="Seated")
    waiting = new_students(world, program, 2, prefix="Waiting")
    move(client, world, program, 1, seated, full)
    refused = post_move(client, world, program, 1, waiting[:1], str(full.id))
    assert refused.status_code == 409 and refused.json["error"]["code"] == "group_full"

    for student in waiting:  # one at a time: the order of the waitlist
        queued = post_move(client, world, program, 1, [student], str(full.id), waitlist=True)
        assert queued.status_code == 202, queued.json
        assert queued.json["waitlisted"] == [str(student["id"])]
        assert queued.json["moved_student_ids"] == [] and queued.json["capacity"] == "2/2"
    assert waitlist(client, world, program, 1, full) == ["Waiting 000", "Waiting 001"]

    out = move(client, world, program, 1, seated[:1], other)
    assert out.status_code == 200, out.json
    week = view(client, world, program, 1)
    assert names_in(group_in(week, full)) == ["Seated 001", "Waiting 000"]
    assert group_in(week, full)["capacity"] == "2/2"
    assert waitlist(client, world, program, 1, full) == ["Waiting 001"]
    history = client.get(world.url(f"/programs/{program.id}/students/{waiting[0]['id']}"
                                   f"/history"), headers=world.headers("staff")).json
    assert [m["reason"] for m in history["moves"]] == ["waitlist"]


def test_the_student_seated_from_the_waitlist_is_notified(client, world):
    program = new_program(world)
    full = new_group(world, program, "Full", max_size=1)
    seated = new_students(world, program, 1, prefix="Seated")
    waiting = manager(world).add_student(program.id, "Wanda", "Blue",
                                         email=world.student.email)
    move(client, world, program, 1, seated, full)
    post_move(client, world, program, 1, [waiting], str(full.id), waitlist=True)
    assert Notification.objects(user_id=world.student.id).count() == 0
    assert post_move(client, world, program, 1, seated, None).status_code == 200
    notes = Notification.objects(user_id=world.student.id)
    assert [n.kind for n in notes] == ["weekly_group_seat_taken"]
    assert notes[0].data["group_id"] == str(full.id)


def test_a_move_into_a_group_with_free_seats_and_a_waitlist_cannot_jump_the_queue(client,
                                                                                   world):
    program = new_program(world)
    group = new_group(world, program, "G", max_size=1)
    first, queued, late = new_students(world, program, 3)
    move(client, world, program, 1, [first], group)
    post_move(client, world, program, 1, [queued], str(group.id), waitlist=True)
    # the seat freed goes to the waiting student, within the same update
    post_move(client, world, program, 1, [first], None)
    refused = post_move(client, world, program, 1, [late], str(group.id))
    assert refused.status_code == 409
    assert names_in(group_in(view(client, world, program, 1), group)) == ["Kid 001"]


# ------------------------------------------------------------------------- swaps

def test_a_swap_exchanges_two_students_between_full_groups(client, world):
    program = new_program(world)
    left = new_group(world, program, "Left", max_size=2)
    right = new_group(world, program, "Right", max_size=2)
    a, a2, b, b2 = new_students(world, program, 4)
    move(client, world, program, 1, [a, a2], left)
    move(client, world, program, 1, [b, b2], right)
    assert move(client, world, program, 1, [a], right).status_code == 409  # full
    response = swap(client, world, program, 1, a, b)
    assert response.status_code == 200, response.json
    assert response.json["student_a"]["group_id"] == str(right.id)
    assert response.json["student_b"]["group_id"] == str(left.id)
    week = view(client, world, program, 1)
    assert names_in(group_in(week, left)) == ["Kid 001", "Kid 002"]
    assert names_in(group_in(week, right)) == ["Kid 000", "Kid 003"]
    assert group_in(week, left)["capacity"] == group_in(week, right)["capacity"] == "2/2"


def test_swap_rules(client, world):
    program = new_program(world)
    group = new_group(world, program, "G", max_size=3)
    a, b, loose = new_students(world, program, 3)
    move(client, world, program, 1, [a, b], group)
    same = swap(client, world, program, 1, a, b)
    assert same.status_code == 422 and same.json["error"]["code"] == "same_group"
    assert swap(client, world, program, 1, a, a).status_code == 422
    # with an unassigned student: they take the seat, the other leaves the group
    assert swap(client, world, program, 1, a, loose).status_code == 200
    week = view(client, world, program, 1)
    assert names_in(group_in(week, group)) == ["Kid 001", "Kid 002"]
    assert [s["name"] for s in week["unassigned_students"]] == ["Kid 000"]
    assert swap(client, world, program, 1, a, b, role="student").status_code == 403


# ------------------------------------------------------------------------- change sets, undo

def test_undo_reverts_a_bulk_move_and_is_itself_a_change_set(client, world):
    program = new_program(world)
    reds = new_group(world, program, "Reds")
    blues = new_group(world, program, "Blues")
    kids = new_students(world, program, 4)
    move(client, world, program, 1, kids[:2], reds)
    bulk = move(client, world, program, 1, kids, blues)
    assert bulk.status_code == 200, bulk.json

    listed = changes_of(client, world, program, role="staff")
    assert [c["reason"] for c in listed] == ["move", "move"]
    assert listed[0]["id"] == bulk.json["change_id"] and listed[0]["student_count"] == 4

    response = undo(client, world, program, bulk.json["change_id"])
    assert response.status_code == 200, response.json
    assert response.json["reason"] == "undo"
    assert response.json["undo_of"] == bulk.json["change_id"]
    week = view(client, world, program, 1)
    assert names_in(group_in(week, reds)) == ["Kid 000", "Kid 001"]
    assert names_in(group_in(week, blues)) == []
    assert [s["name"] for s in week["unassigned_students"]] == ["Kid 002", "Kid 003"]
    listed = changes_of(client, world, program)
    assert [c["reason"] for c in listed] == ["undo", "move", "move"]
    assert listed[1]["undone_by"] == response.json["id"]
    assert AuditEvent.objects(action="undo", entity_id=listed[1]["id"]).count() == 1
    again = undo(client, world, program, bulk.json["change_id"])
    assert again.status_code == 409 and again.json["error"]["code"] == "undo_conflict"


def test_undo_names_the_students_a_later_move_touched(client, world):
    program = new_program(world)
    reds = new_group(world, program, "Reds")
    blues = new_group(world, program, "Blues")
    kids = new_students(world, program, 3)
    bulk = move(client, world, program, 1, kids, reds).json
    move(client, world, program, 1, kids[1:2], blues)

    response = undo(client, world, program, bulk["change_id"])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "undo_conflict"
    assert response.json["error"]["details"]["student_ids"] == [str(kids[1]["id"])]
    week = view(client, world, program, 1)  # nothing was undone
    assert names_in(group_in(week, reds)) == ["Kid 000", "Kid 002"]
    assert names_in(group_in(week, blues)) == ["Kid 001"]


def test_undo_refuses_when_the_old_group_filled_up_meanwhile(client, world):
    program = new_program(world)
    small = new_group(world, program, "Small", max_size=1)
    big = new_group(world, program, "Big")
    first, second = new_students(world, program, 2)
    move(client, world, program, 1, [first], small)
    out = move(client, world, program, 1, [first], big).json
    move(client, world, program, 1, [second], small)
    response = undo(client, world, program, out["change_id"])
    assert response.status_code == 409
    assert response.json["error"]["details"]["student_ids"] == [str(first["id"])]


def test_undo_of_a_swap_a_generation_and_a_copy(client, world):
    program = new_program(world, max_weeks=2)
    for index, level in enumerate(("Blue", "Blue", "Red")):
        manager(world).add_student(program.id, f"Kid {index}", level)
    generated = client.post(world.url(f"/programs/{program.id}/groups/generate"),
                            json={"max_group_size": 2}, headers=world.headers("admin"))
    assert generated.status_code == 200, generated.json
    copied = client.post(world.url(f"/programs/{program.id}/weeks/2/copy-from/1"),
                         headers=world.headers("admin"))
    assert copied.status_code == 200
    listed = changes_of(client, world, program)
    assert [(c["reason"], [w["week_number"] for w in c["weeks"]]) for c in listed] == [
        ("copy", [2]), ("generate", [1])]
    assert undo(client, world, program, listed[0]["id"]).status_code == 200
    assert sum(len(g["students"]) for g in view(client, world, program, 2)["groups"]) == 0
    assert undo(client, world, program, listed[1]["id"]).status_code == 200
    assert len(view(client, world, program, 1)["unassigned_students"]) == 3

    group = new_group(world, program, "Mixed", max_size=1)
    other = new_group(world, program, "Other", max_size=1)
    kids = manager(world).list_students(program.id).items
    move(client, world, program, 1, kids[:1], group)
    move(client, world, program, 1, kids[1:2], other)
    swapped = swap(client, world, program, 1, kids[0], kids[1]).json
    assert undo(client, world, program, swapped["change_id"]).status_code == 200
    week = view(client, world, program, 1)
    assert names_in(group_in(week, group)) == ["Kid 0"]
    assert names_in(group_in(week, other)) == ["Kid 1"]


def test_only_admins_undo(client, world):
    program = new_program(world)
    group = new_group(world, program, "G")
    done = move(client, world, program, 1, new_students(world, program, 1), group).json
    assert undo(client, world, program, done["change_id"], role="staff").status_code == 403
    assert undo(client, world, program, "0" * 24).status_code == 404


def test_undo_of_a_forced_group_delete_is_refused_as_the_group_is_gone(client, world):
    program = new_program(world, max_weeks=2)
    group = new_group(world, program, "Gone")
    kids = new_students(world, program, 2)
    for week in (1, 2):
        move(client, world, program, week, kids, group)
    client.delete(world.url(f"/programs/{program.id}/groups/{group.id}?force=true"),
                  headers=world.headers("admin"))
    [deleted] = [c for c in changes_of(client, world, program) if c["reason"] == "delete_group"]
    assert [w["week_number"] for w in deleted["weeks"]] == [1, 2]
    response = undo(client, world, program, deleted["id"])
    assert response.status_code == 409
    assert response.json["error"]["details"]["student_ids"] == sorted(
        str(k["id"]) for k in kids)
    assert changes_of(client, world, program)[0]["reason"] == "delete_group"  # no undo made
