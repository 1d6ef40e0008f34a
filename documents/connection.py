"""Connecting to MongoDB (or the embedded SecantusDB, or mongomock), indexes, round trips."""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from urllib.parse import urlparse

import mongoengine
from pymongo import monitoring
from pymongo.errors import BulkWriteError, OperationFailure

from documents.base import SHARD_KEY

log = logging.getLogger(__name__)

DEFAULT_DB = "rota"
SERVER_SELECTION_TIMEOUT_MS = 2000


class RoundTripCounter(monitoring.CommandListener):
    """Counts the commands sent to the database while a recording is open.

    Registered on the PyMongo client; for mongomock, which sends nothing, the collection
    methods are wrapped instead so the same tests hold on both backends.
    """

    HANDSHAKE = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo",
                           "saslStart", "saslContinue", "killCursors", "getnonce"})

    def __init__(self):
        self._lock = threading.Lock()
        self._recordings: list[list[str]] = []

    @contextmanager
    def record(self):
        commands: list[str] = []
        with self._lock:
            self._recordings.append(commands)
        try:
            yield commands
        finally:
            with self._lock:
                # By identity: two open recordings may hold equal lists (nested ones do).
                self._recordings[:] = [r for r in self._recordings if r is not commands]

    def count(self, name: str) -> None:
        if name in self.HANDSHAKE:
            return
        with self._lock:
            for commands in self._recordings:
                commands.append(name)

    def started(self, event):
        self.count(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


ROUND_TRIPS = RoundTripCounter()


class ShardKeyCheck(monitoring.CommandListener):
    """Records every command on a school-owned collection that a sharded cluster could not
    send to the shard of one school: a filter without `school_id`, an aggregation not starting
    with a `$match` on it, an inserted document without it. Tests register it on the PyMongo
    client (tests/conftest.py: the `shard_key_check` fixture, `--check-shard-key`)."""

    # The command name and where its filters are, for the commands that read or change data.
    FILTERS = {
        "find": lambda command: [command.get("filter", {})],
        "count": lambda command: [command.get("query", {})],
        "distinct": lambda command: [command.get("query", {})],
        "findAndModify": lambda command: [command.get("query", {})],
        "update": lambda command: [update["q"] for update in command.get("updates", [])],
        "delete": lambda command: [delete["q"] for delete in command.get("deletes", [])],
        "aggregate": lambda command: [_first_match(command.get("pipeline", []))],
    }

    def __init__(self, collections: set[str], project: str = "", ignored: str = ""):
        self.collections = frozenset(collections)
        # Commands whose innermost caller of the `project` directory is under `ignored` do
        # not count: a test's own lookups of what a request did are not the service's queries.
        self.project, self.ignored = project, ignored
        self._lock = threading.Lock()
        self._recordings: list[list[str]] = []

    @contextmanager
    def record(self):
        """Yields the list of untargeted commands sent meanwhile, one line each."""
        untargeted: list[str] = []
        with self._lock:
            self._recordings.append(untargeted)
        try:
            yield untargeted
        finally:
            with self._lock:
                self._recordings[:] = [r for r in self._recordings if r is not untargeted]

    def started(self, event):
        if not self._recordings:
            return
        problem = self.untargeted(event.command_name, event.command)
        if problem and self._sent_by_the_service():
            with self._lock:
                for untargeted in self._recordings:
                    untargeted.append(problem)

    def _sent_by_the_service(self) -> bool:
        """PyMongo announces a command in the thread that sends it: the innermost frame of the
        project's own code on its stack (not of its installed packages) says who sent it."""
        frame = sys._getframe(2)
        while frame is not None and self.ignored:
            filename = frame.f_code.co_filename
            if filename.startswith(self.project) and "site-packages" not in filename:
                return not filename.startswith(self.ignored)
            frame = frame.f_back
        return True

    def untargeted(self, name: str, command) -> str | None:
        """Why this command would reach every shard, or None when it names one school."""
        collection = command.get(name)
        if not isinstance(collection, str) or collection not in self.collections:
            return None
        if name == "insert":
            missing = [d.get("_id") for d in command.get("documents", []) if SHARD_KEY not in d]
            if missing:
                return f"insert into {collection} without {SHARD_KEY}: _id {missing[:3]}"
            return None
        filters = self.FILTERS.get(name, lambda command: [])(command)
        wrong = [f for f in filters if not filters_on_school(f)]
        if wrong:
            return f"{name} on {collection} without {SHARD_KEY}: {str(wrong[0])[:300]}"
        return None

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def _first_match(pipeline: list) -> dict:
    first = pipeline[0] if pipeline else {}
    return first.get("$match", {}) if isinstance(first, Mapping) else {}


def filters_on_school(filter) -> bool:
    """The filter selects one school, or a few named ones (`$in`), as the shard key's value,
    possibly inside an `$and` or in every branch of an `$or`."""
    if not isinstance(filter, Mapping):
        return False
    if SHARD_KEY in filter:
        value = filter[SHARD_KEY]
        return not isinstance(value, Mapping) or set(value) <= {"$eq", "$in"}
    if any(filters_on_school(part) for part in filter.get("$and", [])):
        return True
    branches = filter.get("$or", [])
    return bool(branches) and all(filters_on_school(branch) for branch in branches)

_MOCK_METHODS = ("find_one", "insert_one", "insert_many", "update_one", "update_many",
                 "replace_one", "delete_one", "delete_many", "find_one_and_update",
                 "find_one_and_replace", "find_one_and_delete", "aggregate", "count_documents",
                 "estimated_document_count", "bulk_write", "distinct")
_mock_depth = threading.local()


def _accept_sort_in_mongomock_bulk() -> None:
    """PyMongo >= 4.11 passes `sort` to bulk update/replace operations; mongomock 4.3 does not
    know it. The service never sorts inside a bulk write, so the argument is dropped."""
    from mongomock.collection import BulkOperationBuilder

    for name in ("add_update", "add_replace"):
        method = getattr(BulkOperationBuilder, name)
        if getattr(method, "_rota_drops_sort", False):
            continue

        def without_sort(self, *args, _method=method, sort=None, **kwargs):
            return _method(self, *args, **kwargs)
        without_sort._rota_drops_sort = True
        setattr(BulkOperationBuilder, name, without_sort)


def _count_mongomock_calls() -> None:
    import mongomock

    collection = mongomock.collection.Collection
    if getattr(collection, "_rota_counted", False):
        return
    for name in _MOCK_METHODS:
        setattr(collection, name, _counted(getattr(collection, name), name))
    collection._rota_counted = True
    # Like PyMongo, a find costs a round trip when its cursor is first read, not when made.
    cursor = mongomock.collection.Cursor
    cursor.__next__ = cursor.next = _counted_first_read(cursor.__next__)
    cursor.__getitem__ = _counted_first_read(cursor.__getitem__)


def _counted_first_read(method):
    @functools.wraps(method)
    def wrapper(self, *args):
        if not getattr(self, "_rota_read", False) and getattr(_mock_depth, "value", 0) == 0:
            ROUND_TRIPS.count("find")
        self._rota_read = True
        _mock_depth.value = getattr(_mock_depth, "value", 0) + 1
        try:
            return method(self, *args)
        finally:
            _mock_depth.value -= 1
    return wrapper


def _counted(method, name):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        # mongomock calls its own public methods internally; count the outermost call only.
        depth = getattr(_mock_depth, "value", 0)
        if depth == 0:
            ROUND_TRIPS.count(name)
        _mock_depth.value = depth + 1
        try:
            return method(*args, **kwargs)
        finally:
            _mock_depth.value = depth
    return wrapper


def is_duplicate_key(exc: Exception) -> bool:
    """A unique index refused the write (MongoDB, the embedded server and mongomock say E11000,
    some wrapped by MongoEngine as a plain operation error)."""
    from mongoengine.errors import NotUniqueError
    from pymongo.errors import DuplicateKeyError

    if isinstance(exc, NotUniqueError | DuplicateKeyError):
        return True
    return "E11000" in str(exc)


DUPLICATE_KEY = 11000


def insert_unique(collection, documents: list[dict]) -> set[int]:
    """Insert every document a unique index lets in, in one round trip; answer the indexes
    of those it refused. Any other failure is raised."""
    if not documents:
        return set()
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()


def failure_reason(error: object) -> str:
    """An error in one short line, for a command's message: PyMongo's server selection errors
    append the whole topology description after the timeout."""
    return " ".join(str(error).split(", Timeout:")[0].split())[:300]


def database_name(uri: str) -> str:
    return urlparse(uri).path.lstrip("/").split("?")[0] or DEFAULT_DB


def connect(uri: str, alias: str = "default"):
    """Connect MongoEngine; `mongomock://localhost/NAME` keeps everything in this process."""
    mongoengine.disconnect(alias)
    name = database_name(uri)
    if uri.startswith("mongomock://"):
        import mongomock

        _count_mongomock_calls()
        _accept_sort_in_mongomock_bulk()
        return mongoengine.connect(db=name, alias=alias, host="mongodb://localhost",
                                   mongo_client_class=mongomock.MongoClient, tz_aware=False)
    return mongoengine.connect(
        db=name, alias=alias, host=uri, tz_aware=False,
        serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        connectTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        socketTimeoutMS=20000,
        event_listeners=[ROUND_TRIPS],
    )


def disconnect(alias: str = "default") -> None:
    mongoengine.disconnect(alias)


def ensure_indexes(documents) -> None:
    """Create every declared index. Options a server lacks (FerretDB: TTL) are dropped with a
    warning; whatever relies on them also filters by time, so nothing depends on them."""
    for document in documents:
        collection = document._get_collection()
        for keys, options in declared_indexes(document):
            _create_index(collection, keys, options)


def declared_indexes(document) -> list[tuple[list[tuple[str, int]], dict]]:
    """The document's `meta["indexes"]` as PyMongo keys and options, as `ensure_indexes`
    creates them."""
    declared = []
    for spec in document._meta.get("indexes", []):
        if isinstance(spec, dict):
            options = {k: v for k, v in spec.items() if k != "fields"}
            fields = spec["fields"]
        else:
            options, fields = {}, spec
        declared.append(([_index_key(field) for field in fields], options))
    return declared


def _create_index(collection, keys: list[tuple[str, int]], options: dict) -> None:
    try:
        collection.create_index(keys, **options)
    except OperationFailure as exc:
        if "expireAfterSeconds" not in options:
            raise
        log.info("TTL index on %s not supported here (%s); expiry filters by time instead",
                    collection.name, exc.details.get("errmsg", exc))
        collection.create_index(keys, **{k: v for k, v in options.items()
                                         if k != "expireAfterSeconds"})


def _index_key(field: str) -> tuple[str, int]:
    if field.startswith("-"):
        return (field[1:], -1)
    return (field.lstrip("+"), 1)
