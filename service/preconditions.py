"""`If-Match`: the version of one resource a write expects, checked inside the write itself.

The API layer (api/etags.py) turns the request's `If-Match` into an `Expectation` about one
resource (its id and the versions its entity tags name; `*`: any version) and runs the view
under it (`expecting`). The write then states it in its own conditional update, never as a
check-then-write:

- `service.aggregates.change` checks every read of the document whose `_id` is the resource:
  a document not at an expected version raises `PreconditionFailed` (412) before planning, and
  a writer that lost the race on the version re-reads and so answers 412 too, never a retry;
- `service.aggregates.update_where` adds `version: {$in: expected}` to its filter when the
  filter names the resource's `_id`; when nothing matched, one read tells a 412 from the
  caller's own 404/409;
- a resource embedded in an aggregate (a timetable assignment inside its slot) is checked by
  the plan itself: `check(assignment_id, assignment["version"])` on what the plan read.

Once the resource's own write succeeded, later writes of the same request (an audit, a second
step) are not checked again. Managers that write otherwise call `guard(id)` for the filter and
`check(id, version)` when the write matched nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from service.errors import PreconditionFailed


def resource_id(kind: str, school_id) -> str:
    """The id of a resource that is one per school (`versioned(..., kind=...)`)."""
    return f"{kind}:{school_id}"


def etag_of(resource_id, version) -> str:
    """The strong validator of a resource at a version: `"<id>-v<version>"` (quoted)."""
    return f'"{resource_id}-v{int(version or 0)}"'


@dataclass
class Expectation:
    """What `If-Match` said about one resource: `versions` it may be at (None: `*`, any)."""

    resource_id: str
    versions: frozenset[int] | None
    checked: bool = False   # a read or a write of the resource was held against it
    written: bool = False   # the resource's own write succeeded: nothing more to check

    def about(self, resource_id) -> bool:
        return not self.written and str(resource_id).lower() == self.resource_id

    def matches(self, version) -> bool:
        return self.versions is None or int(version or 0) in self.versions


_expected: ContextVar[Expectation | None] = ContextVar("rota_if_match", default=None)


@contextmanager
def expecting(expectation: Expectation | None) -> Iterator[Expectation | None]:
    token = _expected.set(expectation)
    try:
        yield expectation
    finally:
        _expected.reset(token)


def current() -> Expectation | None:
    return _expected.get()


def check(resource_id, version) -> None:
    """412 `precondition_failed` when this request's `If-Match` is about `resource_id` and
    `version` (as just read) is not one it expects."""
    expectation = _expected.get()
    if expectation is None or not expectation.about(resource_id):
        return
    expectation.checked = True
    if not expectation.matches(version):
        raise PreconditionFailed(resource_id, version)


def guard(resource_id) -> dict:
    """The filter clause that makes a write of `resource_id` conditional on `If-Match`
    (`{}` when the request has none about it, or said `*`)."""
    expectation = _expected.get()
    if expectation is None or not expectation.about(resource_id):
        return {}
    expectation.checked = True
    if expectation.versions is None:
        return {}
    versions = sorted(expectation.versions)
    if 0 in versions:  # documents written before `version` existed have none
        return {"version": {"$in": [*versions, None]}}
    return {"version": {"$in": versions}}


def written(resource_id) -> None:
    """The resource's own conditional write succeeded: the rest of the request is not held
    against `If-Match` again (its version has moved on by then)."""
    expectation = _expected.get()
    if expectation is not None and expectation.about(resource_id):
        expectation.checked = True
        expectation.written = True
