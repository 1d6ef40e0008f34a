"""Is the database there?"""

from __future__ import annotations

from mongoengine.connection import get_db
from pymongo.errors import PyMongoError


def database_reachable() -> bool:
    try:
        get_db().command("ping")
        return True
    except PyMongoError:
        return False
