"""Is the database there? Asked with a short deadline: a probe must answer while the database
is down (connection refused) or hung (a paused server accepts the connection, never replies)."""

from __future__ import annotations

import pymongo
from mongoengine.connection import get_db
from pymongo.errors import PyMongoError

PING_DEADLINE_SECONDS = 1.0


def database_reachable(deadline: float = PING_DEADLINE_SECONDS) -> bool:
    # pymongo.timeout bounds server selection, the connection and the reply together; the
    # client's own socket timeout (20 s, for slow imports) would hold a probe far too long.
    try:
        with pymongo.timeout(deadline):
            get_db().command("ping")
        return True
    except PyMongoError:
        return False
