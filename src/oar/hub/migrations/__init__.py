"""Alembic migrations of the hub's database: the schema's only source of truth after the baseline."""
