"""Alembic migrations of the database schema; run through `assistant.store.migrate`."""
