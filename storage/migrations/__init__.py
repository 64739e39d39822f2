"""Alembic migrations of the store; run them with `eopt db upgrade`."""
