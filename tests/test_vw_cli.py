"""``wardwatch vw``: the caseload, alerts, refused readings and the due check from a shell."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import SMALL_SYSTEM
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.system import load_system_file
from wardwatch.cli import app as cli
from wardwatch.clikit import out
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import SystemClock
from wardwatch.runtime import Runtime
from wardwatch.virtualward.schemas import DeviceIn, EnrolRequest, PlanIn


def reading(device: str, code: str, value: float, unit: str, at: datetime) -> dict[str, object]:
    return {"device": device, "code": code, "value": value, "unit": unit, "at": at.isoformat()}


@pytest.fixture
def ward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two patients at home: one calm, one with a partial set scoring 6 (an urgent alert)."""
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=SystemClock())
    try:
        rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
        for n in (1, 2):
            rt.virtualward.register_device(DeviceIn(serial=f"CLI-{n}"), SYSTEM)
            rt.virtualward.enrol(
                EnrolRequest(
                    patient=PatientIn(local_id=f"CLI-P{n}"),
                    ward="VW1-FRA",
                    plan=PlanIn(mode="continuous", interval_minutes=1, grace_minutes=1),
                    devices=[f"CLI-{n}"],
                ),
                SYSTEM,
            )
        now = SystemClock().now()
        body = {
            "readings": [
                reading("CLI-1", "pulse", 72, "/min", now),
                reading("CLI-2", "respiration_rate", 26, "/min", now),
                reading("CLI-2", "spo2", 91, "%", now),
                reading("CLI-2", "pulse", 900, "/min", now),
            ]
        }
        out = rt.virtualward.receive_compact(json.dumps(body), "api", SYSTEM)
        assert out["stored"] == 3 and len(out["refused"]) == 1
    finally:
        rt.close()
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    width = out.width
    out.width = 250  # wide enough that no cell wraps
    try:
        result = CliRunner().invoke(cli, ["vw", *args])
    finally:
        out.width = width
    return result.exit_code, result.output


def test_caseload_alerts_and_refusals(ward: Path) -> None:
    code, text = run("caseload")
    assert code == 0, text
    lines = [line for line in text.splitlines() if "VW1-FRA" in line]
    assert len(lines) == 2 and "≥6 partial" in lines[0]  # the sicker patient first
    code, text = run("alerts")
    assert code == 0 and "urgent" in text and "NEWS2 at least 6" in text
    code, text = run("rejected")
    assert code == 0 and "not possible" in text and "CLI-2" in text


def test_check_raises_missed_readings(ward: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, text = run("check")
    assert code == 0 and "0 alerts" in text
    later = SystemClock().now() + timedelta(minutes=5)
    monkeypatch.setattr(SystemClock, "now", lambda self: later)
    code, text = run("check")
    assert code == 0 and "2 alerts raised or escalated" in text
    code, text = run("alerts")
    assert text.count("missed_reading") == 2
