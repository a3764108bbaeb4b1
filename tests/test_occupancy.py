"""Occupancy figures against hand counts; the past rebuilt from the event log; the SitRep."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError
from typer.testing import CliRunner

from tests.conftest import SMALL_SYSTEM
from wardwatch.capacity.occupancy import WardMeta
from wardwatch.capacity.schemas import AdmitRequest, DischargeRequest, PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.cli import app as cli
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock, ScaledClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.runtime import Runtime


def _admit(rt: Runtime, code: str, n: int) -> str:
    bed = rt.capacity.list_beds(BedFilter(code=code))[0]
    stay = rt.capacity.admit(
        AdmitRequest(bed_id=bed.id, patient=PatientIn(local_id=f"P{n}")), SYSTEM
    )
    return stay.id


def _fill(rt: Runtime) -> None:
    """AMU 5/6 occupied, 1 blocked; M1 4/4; PAED 1/3; VW 2/5; ICU 1/2."""
    for n, code in enumerate(
        [
            "ACU1-AMU-01",
            "ACU1-AMU-02",
            "ACU1-AMU-03",
            "ACU1-AMU-04",
            "ACU1-AMU-05",
            "ACU1-M1-01",
            "ACU1-M1-02",
            "ACU1-M1-03",
            "ACU1-M1-04",
            "ACU1-PAED-01",
            "VW1-FRA-01",
            "VW1-FRA-02",
            "ACU1-ICU-01",
        ]
    ):
        _admit(rt, code, n)
    amu6 = rt.capacity.list_beds(BedFilter(code="ACU1-AMU-06"))[0]
    rt.capacity.change_bed_state(amu6.id, BedState.BLOCKED, "maintenance", SYSTEM)


def test_live_snapshot_matches_hand_counts(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    _fill(small)
    snap = client.get("/api/occupancy", params={"wards": True}, headers=admin).json()
    system = snap["system"]
    # 28 beds; ESC-03/04 closed, AMU-06 blocked: 25 open; 13 occupied.
    assert (system["total"], system["open"], system["occupied"]) == (28, 25, 13)
    assert system["closed"] == 2 and system["blocked"] == 1 and system["available"] == 12
    assert system["occupancy"] == round(13 / 25, 4) and system["over_target"] is False
    # G&A: AMU(6) M1(4) F1(4) ESC(4) PAED(3) = 21 beds, 18 open, 10 occupied.
    ga = system["general_acute"]
    assert (ga["total"], ga["open"], ga["occupied"]) == (21, 18, 10)
    assert system["escalation"]["open"] == 2 and system["core"]["occupied"] == 13
    assert system["by_site_kind"]["virtual_ward"]["occupied"] == 2
    acu1 = next(s for s in snap["sites"] if s["code"] == "ACU1")
    amu = next(w for w in acu1["wards"] if w["code"] == "ACU1-AMU")
    assert amu["occupancy"] == 1.0 and amu["over_target"] is True
    m1 = next(w for w in acu1["wards"] if w["code"] == "ACU1-M1")
    assert m1["available"] == 0 and m1["occupied"] == 4


def test_past_snapshot_is_rebuilt_from_the_event_log(
    small: Runtime, clock: ManualClock, client: TestClient, admin: dict[str, str]
) -> None:
    _fill(small)
    clock.advance(timedelta(hours=2))
    then = clock.now()
    live_then = small.occupancy.live(include_wards=True)
    clock.advance(timedelta(minutes=1))
    for stay in small.capacity.list_stays()[:5]:
        small.capacity.discharge(stay.id, DischargeRequest(destination="home", pathway=0), SYSTEM)
    clock.advance(timedelta(hours=1))
    rebuilt = client.get(
        "/api/occupancy", headers=admin, params={"at": then.isoformat(), "wards": True}
    ).json()
    assert rebuilt["system"] == live_then["system"]
    assert rebuilt["sites"] == live_then["sites"]
    assert client.get("/api/occupancy", headers=admin).json()["system"]["occupied"] == 8
    future = client.get(
        "/api/occupancy",
        headers=admin,
        params={"at": (clock.now() + timedelta(hours=1)).isoformat()},
    )
    assert future.status_code == 422 and "in the future" in future.json()["message"]


def test_history_time_series(
    small: Runtime, clock: ManualClock, client: TestClient, admin: dict[str, str]
) -> None:
    start = clock.now()
    ids = []
    for i, code in enumerate(["ACU1-AMU-01", "ACU1-AMU-02", "ACU1-AMU-03"]):
        clock.advance(timedelta(hours=1))
        ids.append(_admit(small, code, i))
    clock.advance(timedelta(hours=1))
    small.capacity.discharge(ids[0], DischargeRequest(destination="home", pathway=0), SYSTEM)
    clock.advance(timedelta(minutes=30))
    r = client.get(
        "/api/occupancy/history",
        headers=admin,
        params={
            "from": start.isoformat(),
            "to": (start + timedelta(hours=4)).isoformat(),
            "step_minutes": 60,
            "ward": "ACU1-AMU",
        },
    )
    assert r.status_code == 200, r.text
    assert [p["occupied"] for p in r.json()] == [0, 1, 2, 3, 2]
    assert [p["open"] for p in r.json()] == [6] * 5
    bad = client.get(
        "/api/occupancy/history",
        headers=admin,
        params={"from": start.isoformat(), "to": start.isoformat()},
    )
    assert bad.status_code == 422


def test_long_stays(
    small: Runtime, clock: ManualClock, client: TestClient, admin: dict[str, str]
) -> None:
    _admit(small, "ACU1-AMU-01", 1)
    clock.advance(timedelta(days=8))
    _admit(small, "ACU1-AMU-02", 2)
    clock.advance(timedelta(days=7))
    _admit(small, "VW1-FRA-01", 3)
    clock.advance(timedelta(days=7))  # day 22 for the first, 14 for the second, 7 for VW
    got = client.get("/api/occupancy/long-stays", headers=admin).json()
    assert got["SYSTEM"] == {"7+": 3, "14+": 2, "21+": 1}
    assert got["ACU1"] == {"7+": 2, "14+": 2, "21+": 1}
    assert got["VW1"] == {"7+": 1, "14+": 0, "21+": 0}


def test_sitrep_is_the_0800_snapshot(
    small: Runtime, clock: ManualClock, client: TestClient, admin: dict[str, str]
) -> None:
    # START is 09:30 UTC on Mon 5 Jan 2026 (GMT): admit now, so at 08:00 on the 6th.
    _fill(small)
    clock.set(datetime(2026, 1, 6, 7, 59, tzinfo=UTC))
    late = _admit(small, "ACU1-F1-01", 99)
    clock.set(datetime(2026, 1, 6, 8, 1, tzinfo=UTC))
    small.capacity.discharge(late, DischargeRequest(destination="home", pathway=0), SYSTEM)
    _admit(small, "ACU1-F1-02", 100)  # after 08:00: not in the snapshot
    clock.set(datetime(2026, 1, 6, 12, 0, tzinfo=UTC))
    report = client.get("/api/sitrep", params={"date": "2026-01-06"}, headers=admin).json()
    assert report["snapshot_at"] == "2026-01-06T08:00:00+00:00"
    rows = {r["site"]: r for r in report["rows"]}
    acu = rows["ACU1"]
    # G&A adult core: AMU 6 (1 blocked) + M1 4 + F1 4 = 13 open; 5 + 4 + 1 occupied.
    assert (acu["ga_adult_core_open"], acu["ga_adult_core_occupied"]) == (13, 10)
    assert (acu["ga_adult_escalation_open"], acu["ga_adult_escalation_occupied"]) == (2, 0)
    assert (acu["ga_paediatric_core_open"], acu["ga_paediatric_core_occupied"]) == (3, 1)
    assert (acu["critical_care_open"], acu["critical_care_occupied"]) == (2, 1)
    assert acu["ga_occupancy"] == round(11 / 18, 4)
    assert rows["SYSTEM"]["other_occupied"] == 2 and rows["SYSTEM"]["beds_closed"] == 2
    csv_text = client.get(
        "/api/sitrep", params={"date": "2026-01-06", "format": "csv"}, headers=admin
    ).text
    parsed = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["site"] for r in parsed] == ["ACU1", "VW1", "SYSTEM"]
    assert parsed[0]["ga_adult_core_occupied"] == "10"
    summer = small.occupancy.sitrep_time(date(2026, 7, 1))
    assert summer.isoformat() == "2026-07-01T08:00:00+01:00"  # BST


def test_sitrep_cli_writes_csv_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(cli, ["system", "load", str(SMALL_SYSTEM)]).exit_code == 0
    assert (
        runner.invoke(
            cli, ["patient", "admit", "ACU1-AMU-01", "--nhs-number", "9434765919"]
        ).exit_code
        == 0
    )
    bad = runner.invoke(cli, ["patient", "admit", "ACU1-AMU-02", "--nhs-number", "1234567890"])
    assert bad.exit_code == 2 and "not a valid NHS number" in bad.stderr
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    out = tmp_path / "sitrep.csv"
    r = runner.invoke(cli, ["sitrep", "--date", yesterday, "--output", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert rows[-1]["site"] == "SYSTEM" and rows[-1]["beds_total"] == "0"  # nothing existed
    r = runner.invoke(cli, ["occupancy", "--json"])
    assert r.exit_code == 0
    assert '"occupied": 1' in r.stdout
    beds = runner.invoke(cli, ["bed", "list", "--ward", "ACU1-AMU", "--json"])
    assert '"state": "occupied"' in beds.stdout
    r = runner.invoke(cli, ["bed", "set", "ACU1-AMU-01", "available"])
    assert r.exit_code == 1 and "occupied" in r.stderr


def test_sites_without_wards_are_still_listed(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = client.post(
        "/api/sites",
        headers=admin,
        json={"code": "NEW1", "name": "New Care Home", "kind": "care_home"},
    )
    assert r.status_code == 201, r.text
    snap = client.get("/api/occupancy", headers=admin).json()
    new = next(s for s in snap["sites"] if s["code"] == "NEW1")
    assert new["total"] == 0 and new["occupancy"] is None


def test_history_needs_time_zones_and_a_past_end(
    small: Runtime, client: TestClient, admin: dict[str, str], clock: ManualClock
) -> None:
    naive = client.get(
        "/api/occupancy/history",
        headers=admin,
        params={"from": "2026-01-05T08:00:00", "to": "2026-01-05T09:00:00"},
    )
    assert naive.status_code == 422 and "time zone" in naive.json()["message"]
    future = client.get(
        "/api/occupancy/history",
        headers=admin,
        params={
            "from": clock.now().isoformat(),
            "to": (clock.now() + timedelta(hours=2)).isoformat(),
        },
    )
    assert future.status_code == 422 and "in the future" in future.json()["message"]


def test_history_follows_event_time_not_arrival_order(
    small: Runtime, clock: ManualClock, client: TestClient, admin: dict[str, str]
) -> None:
    """A feed may log an event with an earlier time after later ones: history and past
    snapshots must agree anyway."""
    start = clock.now()
    clock.advance(timedelta(hours=3))
    _admit(small, "ACU1-AMU-01", 1)  # logged at +3h
    # An HL7 admission at +1h arrives afterwards (bed AMU-02's own clock allows it).
    small.hl7.handle(
        b"MSH|^~\\&|PAS|ACU1|WW|ACU1|20260105103000||ADT^A01^ADT_A01|H1|P|2.5.1\r"
        b"EVN|A01|20260105103000\rPID|1||HX^^^ACU1^MR||X^Y||19500101|F\r"
        b"PV1|1|I|ACU1-AMU^^2^ACU1\r"
    )
    points = client.get(
        "/api/occupancy/history",
        headers=admin,
        params={
            "from": start.isoformat(),
            "to": (start + timedelta(hours=3)).isoformat(),
            "step_minutes": 60,
            "ward": "ACU1-AMU",
        },
    ).json()
    for point in points:
        past = client.get(
            "/api/occupancy", headers=admin, params={"at": point["at"], "wards": True}
        ).json()
        amu = next(w for s in past["sites"] for w in s.get("wards", []) if w["code"] == "ACU1-AMU")
        assert point["occupied"] == amu["occupied"], point
    assert [p["occupied"] for p in points] == [0, 1, 1, 2]


def test_counters_match_a_full_count_and_can_be_rebuilt(small: Runtime) -> None:
    from wardwatch.capacity import counts

    _fill(small)
    with small.db.read() as s:
        assert sorted(counts.rows(s)) == sorted(counts.grouped(s))
    with small.engine.begin() as conn:  # a bulk change made behind the services' back
        conn.exec_driver_sql("UPDATE beds SET state = 'closed' WHERE state = 'available'")
    with small.db.read() as s:
        assert counts.drift(s)
    with small.db.transaction() as tx:
        counts.recount(tx.session)
    with small.db.read() as s:
        assert counts.drift(s) == {}


def test_times_without_a_time_zone_are_refused_everywhere(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    """HAZ-011 (a): a time without a zone is refused by the clocks, by the database type and
    by the API, never read as local or as UTC."""
    naive = datetime(2026, 1, 5, 8, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="time zone"):
        ManualClock(naive)
    with pytest.raises(ValueError, match="time zone"):
        ScaledClock(naive, speed=60)
    with (
        pytest.raises(StatementError, match="without a time zone"),
        small.db.transaction() as tx,
    ):
        tx.record("test.naive", at=naive, actor=SYSTEM)
    with small.db.read() as s:
        assert not s.scalar(select(func.count()).where(EventRecord.type == "test.naive"))
    r = client.get("/api/occupancy", params={"at": "2026-01-05T08:00:00"}, headers=admin)
    assert r.status_code == 422 and "time zone" in r.json()["message"]


@pytest.mark.parametrize("typed", ["critical care", "Critical Care", " CRITICAL  care "])
def test_a_critical_care_ward_counts_as_critical_care_however_it_is_typed(typed: str) -> None:
    """HAZ-006 (a): the SitRep's critical-care rows do not depend on the specialty's case."""
    meta = WardMeta(
        id="w",
        code="ICU",
        name="Intensive Care",
        specialty=typed,
        kind="core",
        general_acute=False,
        age_group="adult",
        site_code="S",
        site_name="Site",
        site_kind="acute",
    )
    assert meta.sitrep_category == "critical_care"
