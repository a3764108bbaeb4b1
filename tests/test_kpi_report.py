"""``wardwatch report ...`` and ``/api/kpi/...``: CSV, JSON, the PNG chart, and bad input."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import SMALL_SYSTEM
from wardwatch.app import create_app
from wardwatch.capacity.schemas import AdmitRequest, DischargeRequest, PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.system import load_system_file
from wardwatch.cli import app as cli
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM, Actor
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime
from wardwatch.tasks.rules import Action

DAY = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CLEANER = Actor(name="ann", role="housekeeping")


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite database with three discharges cleaned in 40, 60 and 110 minutes."""
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    clock = ManualClock(DAY)
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=clock)
    try:
        rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
        beds = rt.capacity.list_beds(BedFilter(ward="ACU1-AMU"))
        for i, minutes in enumerate((40, 60, 110)):
            stay = rt.capacity.admit(
                AdmitRequest(bed_id=beds[i].id, patient=PatientIn(local_id=f"K{i}")), SYSTEM
            )
            clock.advance(timedelta(hours=2))
            rt.capacity.discharge(stay.id, DischargeRequest(destination="home", pathway=0), SYSTEM)
            [task] = rt.tasks.list_tasks(bed_id=beds[i].id)
            clock.advance(timedelta(minutes=10))
            rt.tasks.act(task.id, Action.START, CLEANER)
            clock.advance(timedelta(minutes=minutes - 10))
            rt.tasks.act(task.id, Action.DONE, CLEANER)
    finally:
        rt.close()
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["report", *args])
    return result.exit_code, result.output


def test_turnaround_as_csv_json_and_a_chart(history: Path) -> None:
    period = ["--from", "2026-01-05T00:00:00+00:00", "--to", "2026-01-06T00:00:00+00:00"]
    code, out = run("turnaround", *period, "--by", "ward", "--format", "csv")
    assert code == 0, out
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert (row["site"], row["ward"], row["count"]) == ("ACU1", "ACU1-AMU", "3")
    assert float(row["turnaround_median"]) == 60.0
    assert float(row["turnaround_p90"]) == 100.0  # 60 + 0.8 * (110 - 60)
    assert float(row["wait_to_clean_median"]) == 10.0
    code, out = run("turnaround", *period, "--by", "day", "--format", "json")
    assert code == 0 and json.loads(out)[0]["day"] == "2026-01-05"
    chart = history / "turnaround.png"
    code, out = run("turnaround", *period, "--format", "json", "--chart", str(chart))
    assert code == 0, out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 5_000
    code, out = run("tasks", *period, "--format", "csv")
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["team"] == "ACU1-housekeeping" and row["to_finish_median"] == "60.0"


def test_bad_report_input_is_refused_clearly(history: Path) -> None:
    code, out = run("turnaround", "--by", "bed")
    assert code == 2 and "by must be one of" in out
    code, out = run("turnaround", "--from", "2026-01-06T00:00:00", "--to", "2026-01-05T00:00:00")
    assert code == 2 and "from must be before to" in out
    code, out = run("turnaround", "--format", "xml")
    assert code == 2 and "--format" in out


def test_kpi_api_and_its_errors(history: Path) -> None:
    rt = Runtime.build(Settings(data_dir=history), clock=ManualClock(DAY + timedelta(days=1)))
    try:
        _, token = rt.auth.create_token(role="read-only", name="kpi")
        client = TestClient(create_app(rt))
        h = {"Authorization": f"Bearer {token}"}
        r = client.get("/api/kpi/turnaround", params={"by": "site"}, headers=h)
        assert r.status_code == 200 and r.json()[0]["turnaround_median"] == 60.0
        r = client.get("/api/kpi/bed-waits", headers=h)
        assert r.status_code == 200 and r.json() == []  # nobody asked for a bed
        r = client.get("/api/kpi/turnaround", params={"from": "2026-01-05T00:00:00"}, headers=h)
        assert r.status_code == 422 and "time zone" in r.json()["message"]
        r = client.get("/api/kpi/tasks", params={"by": "moon"}, headers=h)
        assert r.status_code == 422
    finally:
        rt.close()
