"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from wardwatch.capacity.schemas import PatientIn
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.db.migrate import is_current
from wardwatch.models import Base
from wardwatch.runtime import Runtime
from wardwatch.virtualward import compact
from wardwatch.virtualward.schemas import DeviceIn, EnrolRequest, PlanIn


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


@pytest.mark.parametrize("table", ["vw_readings", "vw_scores"])
def test_stored_readings_and_scores_are_append_only_in_the_database(
    small: Runtime, clock: ManualClock, table: str
) -> None:
    """HAZ-V12: a reading or a NEWS2 score, once stored, cannot be edited or deleted."""
    small.virtualward.register_device(DeviceIn(serial="AO-1"), SYSTEM)
    small.virtualward.enrol(
        EnrolRequest(
            patient=PatientIn(local_id="AO-P"),
            ward="VW1-FRA",
            plan=PlanIn(mode="spot", times_per_day=4),
            devices=["AO-1"],
        ),
        SYSTEM,
    )
    reading = {"code": "pulse", "value": 72, "unit": "/min"}
    body = {"device": "AO-1", "at": clock.now().isoformat(), "readings": [reading]}
    readings, batteries, refused = compact.parse(json.dumps(body))
    result = small.virtualward.ingestor.ingest(readings, source="api", actor=SYSTEM)
    assert result.stored == 1 and result.scores == 1 and not refused and not batteries
    for statement in (f"UPDATE {table} SET at = at", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"), small.engine.begin() as conn:
            conn.execute(text(statement))
    with small.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1


def _token(rt: Runtime) -> str:
    return rt.auth.create_token(role="clinician", name="t")[1]
