"""Sharding readiness: every school-owned collection can be sharded on `school_id`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from documents import all_documents
from documents.base import SHARD_KEY, UNSHARDED, SchoolOwned
from documents.connection import declared_indexes

SCHOOL_OWNED = [d for d in all_documents() if issubclass(d, SchoolOwned)]


def by_name(documents):
    return [pytest.param(d, id=d.__name__) for d in documents]


@pytest.mark.parametrize("document", by_name(SCHOOL_OWNED))
def test_every_index_of_a_school_owned_document_starts_with_the_shard_key(document):
    """A sharded cluster can only enforce a unique index that starts with the shard key, and
    only an index starting with it serves a query targeted at one school."""
    wrong = [keys for keys, _ in declared_indexes(document) if keys[0][0] != SHARD_KEY]
    assert not wrong, f"{document.__name__} indexes not starting with {SHARD_KEY}: {wrong}"


@pytest.mark.parametrize("document", by_name(SCHOOL_OWNED))
def test_no_school_owned_document_relies_on_its_own_id_for_uniqueness(document):
    """A sharded cluster enforces a unique `_id` on each shard only: a natural key as `_id`
    would no longer be unique, where a unique index starting with school_id stays so."""
    from mongoengine import ObjectIdField

    assert document._meta["id_field"] == "id"
    assert isinstance(document._fields["id"], ObjectIdField)


def test_every_other_document_is_listed_as_unsharded_with_a_reason():
    others = {d._get_collection_name() for d in all_documents()
              if not issubclass(d, SchoolOwned)}
    assert others == set(UNSHARDED)
    assert all(reason.strip() for reason in UNSHARDED.values())


def test_filters_on_school_accepts_one_school_or_named_schools_in_every_branch():
    from bson import ObjectId

    from documents.connection import filters_on_school

    school = ObjectId()
    assert filters_on_school({"school_id": school, "name": "x"})
    assert filters_on_school({"school_id": None})  # company-level audit events: the null chunk
    assert filters_on_school({"school_id": {"$in": [school]}})
    assert filters_on_school({"$and": [{"school_id": school}, {"a": 1}]})
    assert filters_on_school({"$or": [{"school_id": school}, {"school_id": school, "b": 2}]})
    assert not filters_on_school({})
    assert not filters_on_school({"school_id": {"$ne": school}})
    assert not filters_on_school({"$or": [{"school_id": school}, {"email": "a@b.test"}]})


def test_the_listener_names_each_untargeted_command_of_a_school_owned_collection():
    from bson import ObjectId

    from documents.connection import ShardKeyCheck

    check, school = ShardKeyCheck({"projects"}), ObjectId()
    targeted = [
        ("find", {"find": "projects", "filter": {"school_id": school}}),
        ("aggregate", {"aggregate": "projects", "pipeline": [{"$match": {"school_id": school}}]}),
        ("insert", {"insert": "projects", "documents": [{"_id": 1, "school_id": school}]}),
        ("update", {"update": "projects", "updates": [{"q": {"school_id": school}, "u": {}}]}),
        ("find", {"find": "users", "filter": {"email": "a@b.test"}}),  # unsharded
        ("getMore", {"getMore": 1, "collection": "projects"}),
    ]
    assert [check.untargeted(name, command) for name, command in targeted] == [None] * 6
    untargeted = [
        ("find", {"find": "projects", "filter": {"slug": "x"}}),
        ("count", {"count": "projects"}),
        ("aggregate", {"aggregate": "projects", "pipeline": [{"$sort": {"school_id": 1}}]}),
        ("insert", {"insert": "projects", "documents": [{"_id": 1, "school_id": school},
                                                         {"_id": 2}]}),
        ("delete", {"delete": "projects", "deletes": [{"q": {"school_id": school}},
                                                       {"q": {"_id": 3}}]}),
        ("findAndModify", {"findAndModify": "projects", "query": {"_id": 4}}),
        ("distinct", {"distinct": "projects", "key": "slug", "query": {}}),
    ]
    problems = [check.untargeted(name, command) for name, command in untargeted]
    assert all(problems), problems
    assert problems[3] == "insert into projects without school_id: _id [2]"


@pytest.mark.integration
def test_requests_of_schools_users_audit_projects_send_only_targeted_commands(
        world, client, shard_key_check):
    """Schools, users, departments, audit, projects, notifications: an admin's day. (The
    whole embedded run checks every test with --check-shard-key.)"""
    admin = world.headers("admin")
    user = client.post(world.url("/users"), headers=admin,
                       json={"email": "new@school.test", "name": "New", "role": "staff"})
    assert user.status_code == 201, user.json
    project = client.post(world.url("/projects"), headers=admin, json={"name": "Science Fair"})
    assert project.status_code == 201, project.json
    renamed = client.patch(world.url(f"/projects/{project.json['id']}"), headers=admin,
                           json={"name": "Fair"})
    assert renamed.status_code == 200, renamed.json
    for path in ("", "/users", f"/users/{user.json['id']}", "/departments", "/audit",
                 "/projects"):
        assert client.get(world.url(path), headers=admin).status_code == 200, path
    assert client.get("/api/v1/notifications", headers=world.headers("staff")).status_code == 200


# ---------------------------------------------------------------------------- rota shard

class FakeMongos:
    """What `rota shard` asks a mongos, with the catalog of sharded collections it keeps."""

    def __init__(self, mongos: bool = True, sharded: dict | None = None):
        self.mongos, self.sharded, self.commands = mongos, dict(sharded or {}), []
        self.admin = self
        self.config = SimpleNamespace(collections=SimpleNamespace(find=self.find))

    def command(self, command):
        if command == "hello":
            return {"msg": "isdbgrid"} if self.mongos else {"isWritablePrimary": True}
        self.commands.append(command)
        if "shardCollection" in command:
            self.sharded[command["shardCollection"]] = command["key"]
        return {"ok": 1}

    def find(self, filter, projection):
        return [{"_id": namespace, "key": key} for namespace, key in self.sharded.items()]


def school_owned_collections() -> list[str]:
    return sorted(d._get_collection_name() for d in SCHOOL_OWNED)


def test_the_shard_commands_enable_sharding_then_shard_what_is_not_sharded_yet():
    from scripts.shard import shard_commands

    names = ["projects", "audit_events", "leases"]
    assert shard_commands("rota", names, {}) == [
        {"enableSharding": "rota"},
        {"shardCollection": "rota.audit_events", "key": {"school_id": 1}},
        {"shardCollection": "rota.leases", "key": {"school_id": 1}},
        {"shardCollection": "rota.projects", "key": {"school_id": 1}}]
    assert shard_commands("rota", names, {"rota.leases": {"school_id": 1}})[1:] == [
        {"shardCollection": "rota.audit_events", "key": {"school_id": 1}},
        {"shardCollection": "rota.projects", "key": {"school_id": 1}}]
    every = {f"rota.{name}": {"school_id": 1} for name in names}
    assert shard_commands("rota", names, every) == []


def test_on_a_mongos_every_school_owned_collection_is_sharded_once(app):
    from scripts.shard import run_shard

    mongos, said = FakeMongos(), []
    assert run_shard(SimpleNamespace(client=mongos, name="rota"), echo=said.append) == 0
    assert sorted(mongos.sharded) == [f"rota.{n}" for n in school_owned_collections()]
    assert set(UNSHARDED).isdisjoint(name.split(".", 1)[1] for name in mongos.sharded)
    assert said[-1].startswith(f"{len(SCHOOL_OWNED)} collection(s) sharded on")
    mongos.commands.clear()
    assert run_shard(SimpleNamespace(client=mongos, name="rota"), echo=said.append) == 0
    assert mongos.commands == []
    assert said[-1].startswith("0 collection(s) sharded")


def test_a_dry_run_prints_the_commands_and_runs_none(app):
    from scripts.shard import run_shard

    mongos, said = FakeMongos(sharded={"rota.projects": {"school_id": 1}}), []
    assert run_shard(SimpleNamespace(client=mongos, name="rota"), dry_run=True,
                     echo=said.append) == 0
    assert mongos.commands == []
    assert said[0] == "would run enableSharding rota"
    assert "would run shardCollection rota.projects key {'school_id': 1}" not in said
    assert said[-1].startswith(f"{len(SCHOOL_OWNED) - 1} collection(s) to shard")


def test_elsewhere_rota_shard_says_it_needs_a_mongos_and_exits_2(monkeypatch, database_uri):
    from click.testing import CliRunner

    from scripts import cli
    from scripts.shard import run_shard

    said = []
    assert run_shard(SimpleNamespace(client=FakeMongos(mongos=False), name="rota"),
                     echo=said.append) == 2
    assert said == ["rota shard needs a mongos: MONGODB_URI names a single server or a "
                    "replica set, whose collections are not sharded"]
    monkeypatch.delenv("MONGODB_URI", raising=False)
    result = CliRunner().invoke(cli.main, ["shard"])
    assert (result.exit_code, result.output) == (
        2, "rota shard needs a mongos: set MONGODB_URI to the cluster's mongos\n")
    if database_uri.startswith("mongodb://"):  # the embedded server is a single node
        monkeypatch.setenv("MONGODB_URI", database_uri)
        result = CliRunner().invoke(cli.main, ["shard"])
        assert result.exit_code == 2
        assert result.output.startswith("rota shard needs a mongos:")


def test_rota_shard_on_an_unreachable_database_exits_3_with_one_line(monkeypatch):
    from click.testing import CliRunner

    from scripts import cli

    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/rota")
    result = CliRunner().invoke(cli.main, ["shard"])
    assert result.exit_code == 3
    assert result.output.startswith("rota shard failed: 127.0.0.1:1: [Errno 111]")
    assert result.output.count("\n") == 1


def test_a_tests_own_lookups_are_not_the_services_commands():
    from pathlib import Path

    from documents.connection import ShardKeyCheck

    tests = str(Path(__file__).parent) + "/"
    event = SimpleNamespace(command_name="find", command={"find": "projects", "filter": {}})
    for ignored, recorded in ((tests, []), ("", ["find on projects without school_id: {}"])):
        check = ShardKeyCheck({"projects"}, project=str(Path(tests).parent) + "/",
                              ignored=ignored)
        with check.record() as untargeted:
            check.started(event)  # sent from here, a test
        assert untargeted == recorded


def test_a_lookup_by_id_names_id_first_so_the_embedded_server_uses_its_index(app):
    """The embedded server uses the `_id` index only for a filter whose first key is `_id`
    (documents/base.SchoolQuerySet): every `get` of a manager depends on it."""
    from bson import ObjectId

    from documents.weekly_groups import Program

    query = Program.objects.for_school(ObjectId()).filter(id=ObjectId(), name="x")._query
    assert list(query)[0] == "_id" and set(query) == {"_id", "school_id", "name"}
