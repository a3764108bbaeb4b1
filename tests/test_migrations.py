"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from wardwatch.db.migrate import is_current
from wardwatch.models import Base
from wardwatch.runtime import Runtime


def test_migrations_match_models(engine: Engine) -> None:
    assert is_current(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.mark.parametrize("table", ["event_log", "audit_log"])
def test_logs_are_append_only_in_the_database(small: Runtime, table: str) -> None:
    small.auth.record_read(small.auth.authenticate(_token(small)), "stay", ["stay_x"])
    for statement in (f"UPDATE {table} SET at = at", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"), small.engine.begin() as conn:
            conn.execute(text(statement))
    with small.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() > 0


def _token(rt: Runtime) -> str:
    return rt.auth.create_token(role="clinician", name="t")[1]
