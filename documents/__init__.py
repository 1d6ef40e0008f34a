"""MongoEngine documents, one module per area. Documents hold data, never business rules.

Conventions: field names are stored as written (no `db_field`), so index specs and raw
PyMongo filters use the same names; every school-owned document derives from `SchoolOwned`.
"""

from __future__ import annotations

import importlib
import pkgutil

from mongoengine import Document


def all_documents() -> list[type[Document]]:
    """Every concrete document class of the package, for index creation and test cleanup."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    found, pending = [], list(Document.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not cls._meta.get("abstract") and cls.__module__.startswith(__name__ + "."):
            found.append(cls)
    return sorted(found, key=lambda cls: cls._get_collection_name())
