"""`rota shard`: shard every school-owned collection of the database on `school_id`.

The shard key is `{school_id: 1}` alone. A sharded collection can only enforce a unique index
whose prefix is the whole shard key, and every unique index here starts with `school_id` and
goes on with another field (`school_id, slug`): with `{school_id: 1, _id: 1}` none of them
could stay unique. The price: the documents of one school in one collection form one key value,
so its chunk cannot split and a school lives on one shard, which is also what keeps each
request on one shard. Documents of no single school stay unsharded (`documents.base.UNSHARDED`).

Idempotent: collections already sharded are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo.errors import PyMongoError

from documents import all_documents
from documents.base import SHARD_KEY, SchoolOwned
from documents.connection import ensure_indexes, failure_reason

EXIT_OK, EXIT_NOT_MONGOS, EXIT_FAILED = 0, 2, 3
KEY = {SHARD_KEY: 1}


def school_owned() -> list:
    return [d for d in all_documents() if issubclass(d, SchoolOwned)]


def shard_commands(database: str, collections: list[str],
                   sharded: dict[str, dict]) -> list[dict]:
    """The admin commands that shard what is not sharded yet, in order (none when all are)."""
    pending = [name for name in sorted(collections) if f"{database}.{name}" not in sharded]
    if not pending:
        return []
    return [{"enableSharding": database},
            *({"shardCollection": f"{database}.{name}", "key": KEY} for name in pending)]


def is_mongos(client) -> bool:
    return client.admin.command("hello").get("msg") == "isdbgrid"


def sharded_collections(client, database: str) -> dict[str, dict]:
    """The database's sharded collections and their keys, as the cluster's catalog has them.
    (Recent servers also list unsharded collections there, as `unsplittable`.)"""
    found = client.config.collections.find(
        {"_id": {"$regex": f"^{database}\\."}, "dropped": {"$ne": True},
         "unsplittable": {"$ne": True}}, {"key": 1})
    return {entry["_id"]: dict(entry["key"]) for entry in found}


def run_shard(db, dry_run: bool = False, echo: Callable[[str], None] = print) -> int:
    """Shard `db` (a PyMongo database through a mongos); answer the exit code."""
    client = db.client
    try:
        if not is_mongos(client):
            echo("rota shard needs a mongos: MONGODB_URI names a single server or a replica "
                 "set, whose collections are not sharded")
            return EXIT_NOT_MONGOS
        sharded = sharded_collections(client, db.name)
        _warn_other_keys(sharded, echo)
        commands = shard_commands(db.name, [d._get_collection_name() for d in school_owned()],
                                  sharded)
        _apply(client, commands, dry_run, echo)
    except PyMongoError as exc:
        echo(f"rota shard failed: {failure_reason(exc)}")
        return EXIT_FAILED
    collections = max(len(commands) - 1, 0)  # all but enableSharding
    echo(f"{collections} collection(s) {'to shard' if dry_run else 'sharded'} on {KEY}; "
         f"the others already were")
    return EXIT_OK


def _apply(client, commands: list[dict], dry_run: bool, echo) -> None:
    if commands and not dry_run:
        # shardCollection needs an index starting with the key on a non-empty collection.
        ensure_indexes(school_owned())
    for command in commands:
        echo(("would run " if dry_run else "") + _describe(command))
        if not dry_run:
            client.admin.command(command)


def _warn_other_keys(sharded: dict[str, dict], echo) -> None:
    for namespace, key in sorted(sharded.items()):
        if key != KEY:
            echo(f"{namespace} is sharded on {key}, not {KEY}: left as it is")


def _describe(command: dict) -> str:
    name, value = next(iter(command.items()))
    return f"{name} {value}" + (f" key {command['key']}" if "key" in command else "")
