"""Alembic's environment for the algoseek provider (the SDK's own env runner)."""

from metatables.migrations.env import run_mainsequence_alembic_env

from algoseek_sync.backends.mainsequence9.migrations import provider

run_mainsequence_alembic_env(default_provider=provider())
