"""The one write primitive: compare-and-set on `version`, and updates whose filter states the
precondition. On the embedded server, parallel writers must neither lose an update nor let
two through a bounded precondition."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from bson import ObjectId

from service.aggregates import change, update_where
from service.errors import Conflict, NotFound


@pytest.fixture
def seats(app):
    from mongoengine.connection import get_db

    collection = get_db()["test_aggregates"]
    school_id = ObjectId()
    doc_id = collection.insert_one({"school_id": school_id, "taken": [], "version": 0}
                                   ).inserted_id
    return collection, school_id, doc_id


def take_seat(collection, school_id, doc_id, who, capacity=5):
    def plan(doc):
        if who in doc["taken"]:
            return None
        if len(doc["taken"]) >= capacity:
            raise Conflict("full", code="group_full")
        return {"$push": {"taken": who}}
    return change(collection, school_id, {"_id": doc_id}, plan, what="group")


def test_change_applies_the_plan_and_bumps_the_version(seats):
    collection, school_id, doc_id = seats
    before, after = take_seat(collection, school_id, doc_id, "ada")
    assert before["taken"] == [] and after["taken"] == ["ada"] and after["version"] == 1
    before, after = take_seat(collection, school_id, doc_id, "ada")
    assert after is before and after["version"] == 1  # nothing to do writes nothing


def test_change_replans_after_losing_a_race(seats):
    collection, school_id, doc_id = seats
    calls = []

    def plan(doc):
        calls.append(doc["version"])
        if len(calls) == 1:  # another writer gets in between this read and its write
            collection.update_one({"_id": doc_id}, {"$push": {"taken": "rival"},
                                                    "$inc": {"version": 1}})
        return {"$push": {"taken": "me"}}

    _, after = change(collection, school_id, {"_id": doc_id}, plan)
    assert calls == [0, 1] and after["taken"] == ["rival", "me"] and after["version"] == 2


def test_change_gives_up_with_409_when_it_never_wins(seats):
    collection, school_id, doc_id = seats

    def plan(doc):
        collection.update_one({"_id": doc_id}, {"$inc": {"version": 1}})
        return {"$set": {"x": 1}}

    with pytest.raises(Conflict) as raised:
        change(collection, school_id, {"_id": doc_id}, plan, attempts=3)
    assert raised.value.code == "concurrent_update"


def test_another_school_sees_no_document(seats):
    collection, _, doc_id = seats
    with pytest.raises(NotFound):
        change(collection, ObjectId(), {"_id": doc_id}, lambda doc: {"$set": {"x": 1}})
    assert update_where(collection, ObjectId(), {"_id": doc_id}, {"$set": {"x": 1}}) is None


def test_update_where_answers_none_when_the_precondition_fails(seats):
    collection, school_id, doc_id = seats
    locked = update_where(collection, school_id, {"_id": doc_id, "locked": {"$ne": True}},
                          {"$set": {"locked": True}})
    assert locked["locked"] is True and locked["version"] == 1
    assert update_where(collection, school_id, {"_id": doc_id, "locked": {"$ne": True}},
                        {"$set": {"locked": True}}) is None


@pytest.mark.integration
def test_twenty_parallel_writers_fill_five_seats_exactly(seats):
    collection, school_id, doc_id = seats

    def attempt(i):
        try:
            take_seat(collection, school_id, doc_id, f"s{i}")
            return "taken"
        except Conflict as exc:
            return exc.code

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    doc = collection.find_one({"_id": doc_id})
    assert outcomes.count("taken") == 5 and len(doc["taken"]) == 5
    assert outcomes.count("group_full") + outcomes.count("concurrent_update") == 15
    assert doc["version"] == 5
