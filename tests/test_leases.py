"""The lease primitive every read-check-write goes through."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from documents.base import utcnow
from documents.leases import Lease
from service.errors import Conflict
from service.leases import exclusive, exclusive_all


def test_a_held_lease_makes_others_wait_then_409(world):
    with exclusive(world.school.id, "thing:1"):
        with pytest.raises(Conflict) as refused:
            with exclusive(world.school.id, "thing:1", wait=0.05):
                pass
        assert refused.value.code == "busy"
        with exclusive(world.other_school.id, "thing:1", wait=0.05):
            pass  # another school's key is another lease
    with exclusive(world.school.id, "thing:1", wait=0.05):
        pass  # released
    assert Lease.objects.count() == 0


def test_the_lease_is_released_when_the_body_fails(world):
    with pytest.raises(RuntimeError):
        with exclusive(world.school.id, "thing:2"):
            raise RuntimeError("boom")
    assert Lease.objects.count() == 0


def test_a_crashed_holders_lease_is_broken_after_the_stale_time(world):
    Lease(school_id=world.school.id, key="thing:3",
          created_at=utcnow() - timedelta(minutes=5)).save()
    with exclusive(world.school.id, "thing:3", wait=0.05):
        assert Lease.objects(key="thing:3").count() == 1


def test_exclusive_all_takes_every_key(world):
    with exclusive_all(world.school.id, ["b", "a", "b"]):
        assert sorted(Lease.objects.scalar("key")) == ["a", "b"]
    assert Lease.objects.count() == 0


@pytest.mark.integration
def test_parallel_holders_never_overlap_on_ferretdb(app, world):
    """The property FerretDB's conditional updates lack: 16 threads, one holder at a time."""
    inside, overlaps = [], []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        with exclusive(world.school.id, "counter", wait=30):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
