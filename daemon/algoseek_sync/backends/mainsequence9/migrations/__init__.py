"""The Alembic migrations that create and upgrade the algoseek tables (run by ``algoseek-sync migrate``).

The SDK runs them in this process against the Environment's database, over a short-lived
connection the data API hands out, then finalises the tables' catalog rows. A schema change
(a new dataset column) needs a new revision in ``versions/algoseek/``; the shipped revisions
are frozen, and a test checks that their result matches :mod:`..tables`.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "algoseek"
PACKAGE = "algoseek_sync.backends.mainsequence9"
MIGRATIONS = f"{PACKAGE}.migrations"


def provider() -> Any:
    """The migration provider (built on first use: it imports the SDK)."""
    from metatables.migrations import (
        build_alembic_version_metatable,
        build_metatable_migration_provider,
        build_metatable_model_registry,
    )

    from algoseek_sync.backends.mainsequence9 import tables

    global _PROVIDER
    if _PROVIDER is None:
        version_table = build_alembic_version_metatable(
            class_name="AlgoseekAlembicVersion",
            namespace=NAMESPACE,
            identifier=f"{NAMESPACE}.alembic_version",
            schema=None,
            table_name=f"{NAMESPACE}__alembic_version",
        )
        _PROVIDER = build_metatable_migration_provider(
            package=PACKAGE,
            migration_namespace=NAMESPACE,
            script_location=f"{MIGRATIONS}:",
            version_location_prefix=f"{MIGRATIONS}:versions",
            target_metadata=tables.Base.metadata,
            alembic_registry=version_table,
            metatable_models=build_metatable_model_registry(tables.ALL_MODELS, base=tables.Base),
        )
    return _PROVIDER


_PROVIDER: Any = None
