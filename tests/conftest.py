"""Fixtures for every area: backends, app and client, a populated world, round trips, and a
live multi-worker server on the embedded SecantusDB for concurrency tests.

    pytest                      fast run on in-process mongomock (integration tests skip)
    pytest --backend=embedded   the same tests over TCP against a throwaway SecantusDB, plus
                                the integration tests (gunicorn, several workers)
"""

from __future__ import annotations

import itertools
import os

import pytest

from tests.helpers import LiveServer, World, start_live_server

JWT_SECRET = "test-secret-" + "x" * 40
_db_names = itertools.count()


def pytest_addoption(parser):
    parser.addoption("--backend", choices=["mongomock", "embedded"], default="mongomock",
                     help="database for the tests (make test runs both)")
    parser.addoption("--check-shard-key", action="store_true",
                     help="with --backend=embedded: every test fails on a command of the "
                          "service on a school-owned collection that does not filter on "
                          "school_id")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--backend") == "embedded":
        return
    skip = pytest.mark.skip(reason="needs the embedded server: run with --backend=embedded "
                                   "(make test does)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def backend(request) -> str:
    return request.config.getoption("--backend")


@pytest.fixture(scope="session")
def database_server(backend):
    """A throwaway SecantusDB on a free port for the whole run (embedded backend only)."""
    if backend != "embedded":
        yield None
        return
    from scripts import embedded

    server = embedded.start(None)
    yield server
    server.stop()


@pytest.fixture
def database_uri(backend, database_server):
    if backend == "mongomock":
        yield "mongomock://localhost/rota_test"
        return
    name = f"rota_test_{os.getpid()}_{next(_db_names)}"
    yield database_server.uri + name
    import pymongo

    client = pymongo.MongoClient(database_server.uri)
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="session")
def shared_app():
    """One app for the run: building one (blueprints, OpenAPI schemas) takes a quarter of a
    second, most of a fast test. Each test connects it to its own fresh database."""
    from api import create_app
    from tests.openapi_check import CheckedClient

    app = create_app({"MONGODB_URI": "mongomock://localhost/rota_boot",
                      "JWT_SECRET_KEY": JWT_SECRET, "TESTING": True, "ROTA_ENV": "test",
                      "ROTA_CREATE_INDEXES": False})
    app.test_client_class = CheckedClient
    return app


@pytest.fixture(scope="session")
def response_checker(shared_app):
    from tests.openapi_check import ResponseChecker

    return ResponseChecker(shared_app, shared_app.extensions["flask-smorest"]["apis"][""]
                           ["ext_obj"].openapi())


@pytest.fixture(autouse=True)
def _check_responses(request):
    """Every answer of the test client matches the OpenAPI document (tests/openapi_check.py),
    except in a test marked `synthetic_failure` (it provokes an answer no route gives)."""
    if request.node.get_closest_marker("synthetic_failure"):
        yield
        return
    from tests.openapi_check import CheckedClient

    CheckedClient.checker = request.getfixturevalue("response_checker")
    yield
    CheckedClient.checker = None


@pytest.fixture
def app(shared_app, database_uri):
    from documents import all_documents
    from documents.connection import connect, disconnect, ensure_indexes

    connect(database_uri)
    ensure_indexes(all_documents())
    with shared_app.app_context():
        yield shared_app
    disconnect()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def world(app) -> World:
    """A company with two schools (every module on), one person per role, and a second
    company: the tenants most tests need. See `tests/helpers.World`."""
    return World.build(app)


@pytest.fixture
def roundtrips():
    """`with roundtrips() as commands: ...` then `len(commands)` is the number of database
    round trips made inside the block (PyMongo listener; wrapped calls on mongomock)."""
    from documents.connection import ROUND_TRIPS

    return ROUND_TRIPS.record


@pytest.fixture(scope="session")
def live_server(database_server, tmp_path_factory) -> LiveServer:
    """The real service under gunicorn with 4 workers on SecantusDB (integration tests)."""
    if database_server is None:
        pytest.skip("needs --backend=embedded")
    uri = database_server.uri + "rota_live"
    server = start_live_server(uri, JWT_SECRET, tmp_path_factory.mktemp("live"))
    yield server
    server.stop()


@pytest.fixture
def live(live_server, shared_app):
    """A fresh world in the live server's database; this process is connected to it too,
    so tests can arrange data directly and mint tokens."""
    from documents.connection import connect, disconnect

    connect(live_server.uri)
    with shared_app.app_context():
        live_server.world = World.build(shared_app)
        yield live_server
    disconnect()



@pytest.fixture(scope="session")
def shard_key_listener(backend):
    """The `ShardKeyCheck` of the run, registered on every PyMongo client (embedded backend;
    None on mongomock, which sends no commands)."""
    if backend != "embedded":
        return None
    from pymongo import monitoring

    from documents import all_documents
    from documents.base import SchoolOwned
    from documents.connection import ShardKeyCheck

    tests = os.path.dirname(os.path.abspath(__file__))
    listener = ShardKeyCheck({d._get_collection_name() for d in all_documents()
                              if issubclass(d, SchoolOwned)},
                             project=os.path.dirname(tests) + os.sep, ignored=tests + os.sep)
    monitoring.register(listener)
    return listener


@pytest.fixture
def shard_key_check(shard_key_listener):
    """Opt in (or run with --check-shard-key): the test fails when the service sent a command
    on a school-owned collection that a sharded cluster would send to every shard."""
    if shard_key_listener is None:
        yield
        return
    with shard_key_listener.record() as untargeted:
        yield
    if untargeted:
        pytest.fail("commands without school_id:\n  "
                    + "\n  ".join(sorted(set(untargeted))), pytrace=False)


@pytest.fixture(autouse=True)
def _shard_key_everywhere(request):
    if request.config.getoption("--check-shard-key"):
        request.getfixturevalue("shard_key_check")

