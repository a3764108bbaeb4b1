"""The daily report (``wardwatch report daily``, ``GET /api/reports/daily``).

One Monday in January (GMT, so local time is UTC and the hand calculations read plainly)
on the front-door test system, built through the services from events: admissions weeks
before (long stays), discharge-ready dates, a closed escalation bed and a blocked bed,
discharges and an ED patient admitted through a bed request during the day, ambulance
handovers either side of midnight and one cancelled, ED attendances with decisions to admit,
and OPEL history rows inserted directly (the OPEL engine is not needed to read them).
Every figure of the report is checked against the hand calculation in the comments.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import PAYLOADS, auth
from wardwatch.app import create_app
from wardwatch.capacity.schemas import AdmitRequest, DischargeRequest, PatientIn, StayUpdate
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.capacity.system import load_system_file
from wardwatch.cli import app as cli
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.core.errors import NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.frontdoor.daily import DailyReport
from wardwatch.frontdoor.daily_render import COLUMNS, to_csv, to_html
from wardwatch.frontdoor.models import OpelLevel
from wardwatch.frontdoor.schemas import AttendanceIn, DecisionIn, DepartureIn, HandoverMessage
from wardwatch.runtime import Runtime

FRONT_DOOR = PAYLOADS / "front-door-system.yaml"
DAY = date(2026, 1, 5)  # a Monday in GMT: local time is UTC
START = datetime(2025, 12, 10, 8, 0, tzinfo=UTC)
AFTER = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)  # the report is built the next morning


def t(day: int, hh: int, mm: int = 0) -> datetime:
    """A time in the scenario: ``day`` of January 2026 (4, 5 or 6), UTC."""
    return datetime(2026, 1, day, hh, mm, tzinfo=UTC)


@dataclass
class Day:
    """Drives one runtime through the scenario, always forward in time."""

    rt: Runtime
    clock: ManualClock
    stays: dict[str, str] = field(default_factory=dict)
    attendances: dict[str, str] = field(default_factory=dict)

    def at(self, when: datetime) -> None:
        if when > self.clock.now():
            self.clock.set(when)

    def bed(self, code: str) -> str:
        [bed] = self.rt.capacity.list_beds(BedFilter(code=code, limit=1))
        return bed.id

    def admit(self, bed: str, patient: str) -> None:
        req = AdmitRequest(bed_id=self.bed(bed), patient=PatientIn(local_id=patient))
        self.stays[patient] = self.rt.capacity.admit(req, SYSTEM).id

    def discharge(self, patient: str) -> None:
        req = DischargeRequest(destination="usual residence", pathway=0)
        self.rt.capacity.discharge(self.stays[patient], req, SYSTEM)

    def ready(self, patient: str, on: date) -> None:
        self.rt.capacity.update_stay(
            self.stays[patient], StayUpdate(discharge_ready_date=on), SYSTEM
        )

    def ambulance(
        self, step: str, incident: str, when: datetime, site: str | None = None, **kw: Any
    ) -> None:
        msg = HandoverMessage(
            type=step, service="SECAMB", incident=incident, at=when, site=site, **kw
        )
        self.rt.frontdoor.handovers.apply(msg, SYSTEM)

    def handover(self, site: str, incident: str, arrived: datetime, minutes: int) -> None:
        """Arrival and handover, with the clock moved past both."""
        self.at(arrived + timedelta(minutes=minutes))
        self.ambulance("arrival", incident, arrived, site)
        self.ambulance("handover", incident, arrived + timedelta(minutes=minutes))

    def arrive_ed(self, site: str, ref: str, when: datetime) -> None:
        self.at(when)
        req = AttendanceIn(
            site=site, reference=ref, arrived_at=when, patient=PatientIn(local_id=f"P-{ref}")
        )
        self.attendances[ref] = self.rt.frontdoor.ed.arrive(req, SYSTEM).id

    def decide(self, ref: str, when: datetime) -> str:
        self.at(when)
        req = DecisionIn(at=when, specialty="general medicine")
        read = self.rt.frontdoor.ed.decide_to_admit(self.attendances[ref], req, SYSTEM)
        assert read.bed_request_id is not None
        return read.bed_request_id

    def depart(self, ref: str, when: datetime, disposition: str) -> None:
        self.at(when)
        req = DepartureIn(at=when, disposition=disposition)
        self.rt.frontdoor.ed.depart(self.attendances[ref], req, SYSTEM)

    def opel(self, scope: str, when: datetime, level: int, previous: int | None) -> None:
        site_id = None
        if scope != "system":
            site_id = self.rt.system.get_site(scope).id
        with self.rt.db.transaction() as tx:
            tx.session.add(
                OpelLevel(
                    id=new_id("opel"),
                    scope=scope,
                    site_id=site_id,
                    level=level,
                    score=10.0 * level,
                    at=when,
                    previous=previous,
                    parameters=[],
                )
            )


def a_monday(rt: Runtime, clock: ManualClock) -> Day:
    """The scenario of the module docstring; the clock ends at ``AFTER``."""
    d = Day(rt, clock)
    rt.system.load(load_system_file(FRONT_DOOR), SYSTEM)
    rt.capacity.change_bed_state(d.bed("BUSY-ESC-04"), BedState.CLOSED, "no staff", SYSTEM)
    rt.capacity.change_bed_state(d.bed("BUSY-MED-10"), BedState.BLOCKED, "leak", SYSTEM)
    # Long stays, counted at 08:00 on the 5th.
    d.at(datetime(2025, 12, 10, 9, tzinfo=UTC))
    d.admit("BUSY-MED-01", "L21")  # 25 d 23 h: 7+, 14+, 21+
    d.at(datetime(2025, 12, 20, 9, tzinfo=UTC))
    d.admit("BUSY-MED-02", "L14")  # 15 d 23 h: 7+, 14+
    d.at(datetime(2025, 12, 27, 9, tzinfo=UTC))
    d.admit("NEAR-MED-01", "L7")  # 8 d 23 h: 7+
    d.at(datetime(2025, 12, 29, 9, tzinfo=UTC))
    d.admit("COMM-REH-01", "C1")  # 6 d 23 h: not yet a long stay
    d.at(t(4, 12))
    beds = (
        [f"BUSY-AMU-{i:02d}" for i in range(1, 11)]
        + [f"BUSY-MED-{i:02d}" for i in range(3, 9)]
        + [f"BUSY-ESC-{i:02d}" for i in range(1, 4)]
        + [f"NEAR-AMU-{i:02d}" for i in range(1, 8)]
        + [f"NEAR-MED-{i:02d}" for i in range(2, 7)]
        + [f"FAR-AMU-{i:02d}" for i in range(1, 10)]
        + [f"FAR-MED-{i:02d}" for i in range(1, 10)]
    )
    for code in beds:
        d.admit(code, code.replace("-", ""))
    d.ready("L21", date(2026, 1, 2))  # no criteria to reside since the 2nd
    d.ready("L14", date(2026, 1, 6))  # ready tomorrow: still meets the criteria today
    d.ready("C1", DAY)  # ready today: counts
    d.ready("NEARAMU07", date(2026, 1, 4))  # goes home at 06:30: not in a bed at 08:00
    # ED and ambulances, in time order.
    d.arrive_ed("NEAR", "NE2", t(4, 18))
    d.decide("NE2", t(4, 19))  # still waiting at midnight: 29 h
    d.arrive_ed("BUSY", "E1", t(4, 20))
    e1_request = d.decide("E1", t(4, 22))
    d.handover("BUSY", "H0", t(4, 23, 55), 15)  # arrived on the 4th: not the 5th's
    d.handover("BUSY", "H1", t(5, 0, 30), 10)
    d.arrive_ed("BUSY", "E2", t(5, 1))
    d.arrive_ed("BUSY", "E6", t(5, 2))
    d.decide("E6", t(5, 3))
    d.depart("E2", t(5, 3, 30), "discharged")  # 2.5 h
    d.arrive_ed("NEAR", "NE1", t(5, 6))
    d.at(t(5, 6, 30))
    d.discharge("NEARAMU07")
    d.handover("NEAR", "N1", t(5, 8, 5), 50)
    d.handover("BUSY", "H2", t(5, 8, 10), 40)
    d.handover("BUSY", "H3", t(5, 8, 20), 70)
    d.arrive_ed("BUSY", "E3", t(5, 9))
    d.depart("NE1", t(5, 9), "discharged")  # 3 h
    d.at(t(5, 9, 45))
    d.discharge("BUSYAMU01")
    d.discharge("BUSYAMU02")
    d.arrive_ed("BUSY", "E4", t(5, 10))
    d.at(t(5, 10, 30))  # E1 reaches a ward bed: the attendance ends, admitted, 14.5 h
    rt.flow.allocate(e1_request, d.bed("BUSY-MED-09"), SYSTEM)
    rt.flow.arrive(e1_request, SYSTEM)
    d.arrive_ed("BUSY", "E5", t(5, 12))
    d.handover("NEAR", "N2", t(5, 13), 12)
    d.depart("E3", t(5, 13), "discharged")  # exactly 4 h: within
    d.decide("E5", t(5, 14))  # waiting at midnight: 10 h
    d.depart("E6", t(5, 14), "transferred")  # exactly 12 h: not over 12 h
    d.depart("E4", t(5, 14, 30), "left")  # 4.5 h
    d.at(t(5, 15, 10))
    d.ambulance("pre_alert", "H6", t(5, 15), "FAR", expected_at=t(5, 15, 30))
    d.ambulance("cancel", "H6", t(5, 15, 10), reason="stood down")
    d.handover("BUSY", "H4", t(5, 17, 5), 20)
    d.handover("BUSY", "H5", t(5, 23, 50), 35)  # handed over at 00:25 on the 6th
    # OPEL history.
    d.opel("BUSY", t(4, 10), 3, None)
    d.opel("BUSY", t(5, 9), 4, 3)
    d.opel("BUSY", t(5, 18), 3, 4)
    d.opel("BUSY", t(6, 1), 2, 3)  # the next day: not the 5th's
    d.opel("NEAR", t(5, 12), 2, None)  # first level ever computed: a start, not a change
    d.opel("system", t(3, 7), 3, None)
    d.opel("system", t(5, 9, 30), 4, 3)
    d.at(AFTER)
    return d


@pytest.fixture
def report_rt(engine: Any, tmp_path: Path) -> Runtime:
    clock = ManualClock(START)
    rt = Runtime(settings=Settings(data_dir=tmp_path), clock=clock, engine=engine)
    a_monday(rt, clock)
    return rt


#: The hand-checked Monday's report per backend: built once, as every test reads the same
#: deterministic day (each test gets its own copy).
_BUILT: dict[str, dict[str, Any]] = {}


@pytest.fixture
def report(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    if backend not in _BUILT:
        _BUILT[backend] = DailyReport.of(request.getfixturevalue("report_rt")).build(DAY)
    return copy.deepcopy(_BUILT[backend])


def by_site(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["site"]: e for e in [*report["sites"], report["total"]]}


# --- figures --------------------------------------------------------------------------------


def test_the_day_and_its_sites(report: dict[str, Any]) -> None:
    assert report["day"] == "2026-01-05"
    assert report["system"] == {"code": "FD", "name": "Front Door Test System"}
    assert report["since"] == "2026-01-05T00:00:00+00:00"
    assert report["until"] == "2026-01-06T00:00:00+00:00"
    assert report["as_of"] == report["until"] and report["partial"] is False
    assert report["snapshot_at"] == "2026-01-05T08:00:00+00:00"
    assert report["target"] == 0.92 and report["notes"] == []
    # Acute sites first (they have a front door), then the community site, which has beds.
    assert [(e["site"], e["kind"]) for e in report["sites"]] == [
        ("BUSY", "acute"),
        ("FAR", "acute"),
        ("NEAR", "acute"),
        ("COMM", "community"),
    ]
    assert report["total"]["site"] == "SYSTEM"
    comm = by_site(report)["COMM"]
    assert comm["handovers"] is None and comm["ed"] is None and comm["ed_waiting"] is None


def test_beds_and_occupancy_at_0800(report: dict[str, Any]) -> None:
    s = by_site(report)
    # BUSY: 24 beds, ESC-04 closed, MED-10 blocked: 22 open. Occupied: AMU 10, MED 01-08,
    # ESC 01-03 = 21; MED-09 is the one bed available. G&A is every ward here.
    assert s["BUSY"]["beds"] == {
        "total": 24,
        "open": 22,
        "closed": 1,
        "blocked": 1,
        "available": 1,
        "vacant_not_ready": 0,
        "occupied": 21,
        "occupancy": round(21 / 22, 4),
        "ga_open": 22,
        "ga_occupied": 21,
        "ga_occupancy": round(21 / 22, 4),  # 95.5%: over the 92% target
        "ga_over_target": True,
        "escalation_open": 3,
        "escalation_occupied": 3,
        "critical_care_open": 0,
        "critical_care_occupied": 0,
    }
    # NEAR: AMU 01-06 and MED 01-06 occupied; AMU-07 went home at 06:30 (awaiting clean).
    near = s["NEAR"]["beds"]
    assert (near["open"], near["occupied"], near["ga_occupancy"]) == (20, 12, 0.6)
    assert (near["available"], near["vacant_not_ready"], near["ga_over_target"]) == (7, 1, False)
    assert (s["FAR"]["beds"]["ga_occupied"], s["FAR"]["beds"]["ga_occupancy"]) == (18, 0.9)
    assert (s["COMM"]["beds"]["occupied"], s["COMM"]["beds"]["ga_occupancy"]) == (1, 0.125)
    system = s["SYSTEM"]["beds"]
    assert (system["total"], system["open"], system["occupied"]) == (72, 70, 52)
    assert system["ga_occupancy"] == round(52 / 70, 4) and system["ga_over_target"] is False
    assert (system["escalation_open"], system["closed"], system["blocked"]) == (3, 1, 1)


def test_the_beds_are_the_sitreps(report_rt: Runtime, report: dict[str, Any]) -> None:
    """The report and ``wardwatch sitrep`` are one snapshot: they cannot disagree."""
    sitrep = {row["site"]: row for row in report_rt.occupancy.sitrep(DAY)["rows"]}
    for code, entry in by_site(report).items():
        row = sitrep[code]
        assert entry["beds"]["ga_occupancy"] == row["ga_occupancy"]
        assert entry["beds"]["total"] == row["beds_total"]
        assert entry["long_stays"]["21+"] == row["long_stay_21_plus"]


def test_long_stays_and_no_criteria_to_reside(report: dict[str, Any]) -> None:
    s = by_site(report)
    assert s["BUSY"]["long_stays"] == {"7+": 2, "14+": 2, "21+": 1}
    assert s["NEAR"]["long_stays"] == {"7+": 1, "14+": 0, "21+": 0}
    assert s["COMM"]["long_stays"] == {"7+": 0, "14+": 0, "21+": 0}  # 6 d 23 h
    assert s["SYSTEM"]["long_stays"] == {"7+": 3, "14+": 2, "21+": 1}
    # L21 (ready on the 2nd) and C1 (ready on the day); not L14 (ready tomorrow) nor
    # NEARAMU07 (ready, but gone home before 08:00).
    ready = {code: e["no_criteria_to_reside"] for code, e in s.items()}
    assert ready == {"BUSY": 1, "FAR": 0, "NEAR": 0, "COMM": 1, "SYSTEM": 2}


def test_ambulance_handovers(report: dict[str, Any]) -> None:
    s = by_site(report)
    # BUSY: H1 10, H2 40, H3 70, H4 20, H5 35 minutes (H5 handed over after midnight, still
    # the 5th's; H0 arrived on the 4th). Lost: 25 + 55 + 5 + 20 = 105 min.
    assert s["BUSY"]["handovers"] == {
        "arrivals": 5,
        "handed_over": 5,
        "waiting": 0,
        "within_15": 1,
        "over_15": 4,
        "over_30": 3,
        "over_45": 1,
        "over_60": 1,
        "hours_lost": 1.75,
        "mean_minutes": 35.0,
        "longest_minutes": 70.0,
    }
    # NEAR: N1 50, N2 12 minutes; lost 35 min. FAR: the one job was cancelled.
    near = s["NEAR"]["handovers"]
    assert (near["arrivals"], near["over_45"], near["hours_lost"]) == (2, 1, round(35 / 60, 2))
    assert near["mean_minutes"] == 31.0
    assert s["FAR"]["handovers"]["arrivals"] == 0 and s["FAR"]["handovers"]["mean_minutes"] is None
    system = s["SYSTEM"]["handovers"]
    assert (system["arrivals"], system["within_15"], system["over_15"]) == (7, 2, 5)
    assert (system["over_30"], system["over_45"], system["over_60"]) == (4, 2, 1)
    assert system["hours_lost"] == round(140 / 60, 2)
    assert system["mean_minutes"] == round(237 / 7, 1)


def test_ed_and_dta_waits(report: dict[str, Any]) -> None:
    s = by_site(report)
    # BUSY left on the 5th: E1 14.5 h (admitted; 12.5 h from DTA: a trolley wait), E2 2.5 h,
    # E3 4 h exactly (within), E4 4.5 h, E6 12 h exactly (not over 12 h; transferred).
    assert s["BUSY"]["ed"] == {
        "departures": 5,
        "within_4h": 2,
        "four_hour_pct": 40.0,
        "over_12h_from_arrival": 1,
        "trolley_waits_12h": 1,
        "admitted": 1,
    }
    assert s["NEAR"]["ed"]["departures"] == 1 and s["NEAR"]["ed"]["four_hour_pct"] == 100.0
    assert s["FAR"]["ed"]["departures"] == 0 and s["FAR"]["ed"]["four_hour_pct"] is None
    system = s["SYSTEM"]["ed"]
    assert (system["departures"], system["within_4h"], system["four_hour_pct"]) == (6, 3, 50.0)
    assert (system["trolley_waits_12h"], system["admitted"]) == (1, 1)
    # At midnight: E5 at BUSY (DTA 14:00, 10 h) and NE2 at NEAR (DTA 19:00 on the 4th, 29 h).
    busy = s["BUSY"]["ed_waiting"]
    assert busy["at"] == "2026-01-06T00:00:00+00:00"
    assert (busy["in_department"], busy["waiting_for_bed"], busy["dta_over_4h"]) == (1, 1, 1)
    assert (busy["dta_over_12h"], busy["longest_dta_wait_hours"]) == (0, 10.0)
    assert busy["over_12h_from_arrival"] == 0  # arrived 12:00: exactly 12 h
    system_wait = s["SYSTEM"]["ed_waiting"]
    assert (system_wait["waiting_for_bed"], system_wait["dta_over_12h"]) == (2, 1)
    assert system_wait["longest_dta_wait_hours"] == 29.0
    assert s["FAR"]["ed_waiting"]["longest_dta_wait_hours"] is None


def test_opel(report: dict[str, Any]) -> None:
    s = by_site(report)
    # BUSY: 3 from the 4th, 4 at 09:00, back to 3 at 18:00 (the 2 on the 6th is not counted).
    assert s["BUSY"]["opel"] == {
        "level": 3,
        "score": 30.0,
        "level_since": "2026-01-05T18:00:00+00:00",
        "highest": 4,
        "changes": 2,
        "timeline": [
            {"at": "2026-01-05T00:00:00+00:00", "level": 3},
            {"at": "2026-01-05T09:00:00+00:00", "level": 4},
            {"at": "2026-01-05T18:00:00+00:00", "level": 3},
        ],
    }
    near = s["NEAR"]["opel"]
    assert (near["level"], near["highest"], near["changes"]) == (2, 2, 0)
    assert near["timeline"] == [{"at": "2026-01-05T12:00:00+00:00", "level": 2}]
    assert s["FAR"]["opel"] is None and s["COMM"]["opel"] is None
    system = s["SYSTEM"]["opel"]
    assert (system["level"], system["highest"], system["changes"]) == (4, 4, 1)
    assert system["level_since"] == "2026-01-05T09:30:00+00:00"


def test_an_unchanged_level_runs_from_when_it_was_set(report_rt: Runtime) -> None:
    """On the 4th the system's level is the 3 set on the 3rd, all day, with no change."""
    system = DailyReport.of(report_rt).build(date(2026, 1, 4))["total"]["opel"]
    assert (system["level"], system["highest"], system["changes"]) == (3, 3, 0)
    assert system["level_since"] == "2026-01-03T07:00:00+00:00"


def test_hourly_series(report: dict[str, Any]) -> None:
    h = report["hourly"]
    assert len(h["hours"]) == 24 and h["labels"][0] == "00:00" and h["labels"][-1] == "23:00"
    arrivals, lost = h["handover_arrivals"]["SYSTEM"], h["handover_hours_lost"]["SYSTEM"]
    assert {i: n for i, n in enumerate(arrivals) if n} == {0: 1, 8: 3, 13: 1, 17: 1, 23: 1}
    # 08:00: H2 25 + H3 55 + N1 35 min; 17:00: H4 5 min; 23:00: H5 20 min.
    assert {i: x for i, x in enumerate(lost) if x} == {
        8: round(115 / 60, 3),
        17: round(5 / 60, 3),
        23: round(20 / 60, 3),
    }
    assert sum(h["handover_arrivals"]["BUSY"]) == 5 and sum(h["handover_arrivals"]["FAR"]) == 0
    # G&A occupancy at each hour's start: 53 of 70 open beds until NEAR's 06:30 discharge,
    # 52 at 08:00 (the snapshot), 50 after BUSY's 09:45 discharges, 51 once E1 arrives.
    system = h["ga_occupancy"]["SYSTEM"]
    assert system[6] == round(53 / 70, 4) and system[7] == round(52 / 70, 4)
    assert system[8] == report["total"]["beds"]["ga_occupancy"]
    assert system[10] == round(50 / 70, 4) and system[11] == system[23] == round(51 / 70, 4)
    busy = h["ga_occupancy"]["BUSY"]
    assert (busy[9], busy[10], busy[11]) == (round(21 / 22, 4), round(19 / 22, 4), 0.9091)


# --- today, the future, and the edges ------------------------------------------------------


def test_today_is_partial_up_to_now(report_rt: Runtime, clock: ManualClock) -> None:
    report = DailyReport.of(report_rt).build(date(2026, 1, 6))
    assert report["partial"] is True and report["as_of"] == AFTER.isoformat()
    assert len(report["hourly"]["hours"]) == 7  # 00:00 to 06:00
    # Before 08:00 the bed snapshot is not taken yet; the front door's figures still are.
    assert report["snapshot_at"] is None and "not due yet" in report["notes"][0]
    busy = by_site(report)["BUSY"]
    assert busy["beds"] is None and busy["no_criteria_to_reside"] is None
    assert busy["handovers"]["arrivals"] == 0  # H5 arrived on the 5th
    assert busy["opel"]["level"] == 2  # set at 01:00
    assert busy["ed_waiting"]["longest_dta_wait_hours"] == 16.0  # E5: DTA 14:00 yesterday


def test_today_after_0800_has_beds(report_rt: Runtime) -> None:
    clock = report_rt.clock
    assert isinstance(clock, ManualClock)
    clock.set(t(6, 8, 30))
    report = DailyReport.of(report_rt).build(date(2026, 1, 6))
    assert report["snapshot_at"] == t(6, 8).isoformat()
    assert report["total"]["beds"]["occupied"] == 51
    assert [n for n in report["notes"] if "not due" in n] == []
    assert report["hourly"]["ga_occupancy"]["SYSTEM"][-1] == round(51 / 70, 4)


def test_the_first_hour_of_today(report_rt: Runtime) -> None:
    """Just after midnight there is one hour: a history of one point still works."""
    clock = report_rt.clock
    assert isinstance(clock, ManualClock)
    clock.set(datetime(2026, 1, 7, 0, 20, tzinfo=UTC))
    report = DailyReport.of(report_rt).build(date(2026, 1, 7))
    assert report["hourly"]["labels"] == ["00:00"]
    assert report["hourly"]["ga_occupancy"]["SYSTEM"] == [round(51 / 70, 4)]


def test_a_future_day_or_an_impossible_one_is_refused(report_rt: Runtime) -> None:
    builder = DailyReport.of(report_rt)
    with pytest.raises(ValidationFailed, match="in the future"):
        builder.build(date(2026, 1, 7))
    with pytest.raises(ValidationFailed, match="not supported"):
        builder.build(date(1, 1, 1))


def test_no_system_loaded_is_not_found(rt: Runtime) -> None:
    with pytest.raises(NotFound, match="no system is loaded"):
        DailyReport.of(rt).build(rt.clock.now().date())


def test_a_summer_day_is_a_local_day(report_rt: Runtime) -> None:
    """In summer time the day starts at 23:00 UTC the evening before."""
    clock = report_rt.clock
    assert isinstance(clock, ManualClock)
    clock.set(datetime(2026, 7, 2, 12, tzinfo=UTC))
    report = DailyReport.of(report_rt).build(date(2026, 7, 1))
    assert report["since"] == "2026-06-30T23:00:00+00:00"
    assert report["snapshot_at"] == "2026-07-01T07:00:00+00:00"
    assert report["hourly"]["labels"][0] == "00:00" and len(report["hourly"]["labels"]) == 24


# --- CSV and HTML ---------------------------------------------------------------------------


def test_csv_has_a_row_per_site_and_units_in_the_header(report: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [r["site"] for r in rows] == ["BUSY", "FAR", "NEAR", "COMM", "SYSTEM"]
    assert list(rows[0])[:4] == ["day", "as_of", "partial", "snapshot_at"]
    assert list(rows[0])[4:] == [name for name, _ in COLUMNS]
    busy, comm, system = rows[0], rows[3], rows[4]
    assert busy["ga_occupancy_pct"] == "95.5" and busy["ga_over_target"] == "true"
    assert busy["escalation_beds_open"] == "3" and busy["handover_hours_lost_h"] == "1.75"
    assert busy["handover_mean_min"] == "35.0" and busy["ed_4h_pct"] == "40.0"
    assert busy["opel_level"] == "3" and busy["opel_highest"] == "4"
    assert comm["handover_arrivals"] == "" and comm["no_criteria_to_reside"] == "1"
    assert system["dta_longest_wait_h"] == "29.0" and system["long_stay_21plus"] == "1"
    assert system["partial"] == "false" and system["day"] == "2026-01-05"


class Outline(HTMLParser):
    """Checks tags nest properly and collects the text, tables, charts and headings."""

    VOID = frozenset({"meta", "br", "img", "hr", "link", "input", "line", "rect", "polyline"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.counts: dict[str, int] = {}
        self.ids: list[str] = []
        self.svg_labels: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "svg":
            self.svg_labels.append(str(a.get("aria-labelledby")))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def outline(page: str) -> Outline:
    parser = Outline()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def test_html_is_well_formed_and_carries_the_figures(report: dict[str, Any]) -> None:
    page = to_html(report)
    o = outline(page)
    text = " ".join(o.text)
    assert "Daily report: Front Door Test System" in text
    assert "Monday 5 January 2026" in text
    assert o.counts["section"] == 6 and o.counts["table"] == 4 and o.counts["svg"] == 4
    for label in o.svg_labels:  # every chart names its <title> and <desc>
        title, desc = label.split()
        assert title in o.ids and desc in o.ids
    for figure in ("95.5%", "74.3%", "1.75 h", "2.33 h", "40.0%", "29.00 h", "OPEL 4"):
        assert figure in text, figure
    assert "Busy General (BUSY): OPEL 3 (highest 4, 2 changes)" in text
    assert "@media print" in page and "size: A4" in page and "break-before: page" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_html_escapes_every_name(report: dict[str, Any]) -> None:
    report = json.loads(json.dumps(report))
    report["system"]["name"] = '<script>alert("x")</script> & Co'
    report["sites"][0]["name"] = "<b>Busy</b>"
    page = to_html(report)
    assert "<script>" not in page and "<b>Busy</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in page
    assert "&lt;b&gt;Busy&lt;/b&gt;" in page
    outline(page)


def test_a_partial_day_renders_without_a_snapshot(report_rt: Runtime) -> None:
    report = DailyReport.of(report_rt).build(date(2026, 1, 6))
    page = to_html(report)
    o = outline(page)
    text = " ".join(o.text)
    assert "not due yet" in text and "Partial day" in text
    assert "No bed snapshot yet." in text
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert rows[0]["partial"] == "true" and rows[0]["beds_total"] == ""


# --- the API and the CLI --------------------------------------------------------------------


def test_api_formats_permissions_and_bad_days(report_rt: Runtime, report: dict[str, Any]) -> None:
    # Without the app's lifespan: its periodic OPEL check would write to the shared runtime.
    client = TestClient(create_app(report_rt))
    h = auth(report_rt, "read-only")
    r = client.get("/api/reports/daily", params={"day": "2026-01-05"}, headers=h)
    assert r.status_code == 200 and r.json() == report
    r = client.get("/api/reports/daily", params={"day": "2026-01-05", "format": "csv"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="wardwatch-daily-2026-01-05.csv"' in r.headers["content-disposition"]
    assert r.text == to_csv(report)
    r = client.get("/api/reports/daily", params={"day": "2026-01-05", "format": "html"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text == to_html(report)
    r = client.get("/api/reports/daily", headers=h)  # today: the 6th, partial
    assert r.status_code == 200 and r.json()["day"] == "2026-01-06" and r.json()["partial"]
    r = client.get("/api/reports/daily", params={"day": "2026-01-07"}, headers=h)
    assert r.status_code == 422 and "in the future" in r.json()["message"]
    r = client.get("/api/reports/daily", params={"day": "2026-13-40"}, headers=h)
    assert r.status_code == 422
    r = client.get("/api/reports/daily", params={"format": "xml"}, headers=h)
    assert r.status_code == 422
    assert client.get("/api/reports/daily").status_code == 401
    device = auth(report_rt, "device")
    assert client.get("/api/reports/daily", headers=device).status_code == 403


@pytest.fixture
def monday_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scenario in a SQLite file the CLI opens (its own clock is the wall clock)."""
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    clock = ManualClock(START)
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=clock)
    try:
        a_monday(rt, clock)
    finally:
        rt.close()
    return tmp_path


def test_cli_writes_each_format(monday_file: Path) -> None:
    runner = CliRunner()
    for fmt in ("json", "csv", "html"):
        target = monday_file / f"daily.{fmt}"
        args = ["report", "daily", "--day", "2026-01-05", "--format", fmt, "--output", str(target)]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert f"wrote {target}" in result.output
    data = json.loads((monday_file / "daily.json").read_text(encoding="utf-8"))
    assert data["total"]["handovers"]["arrivals"] == 7 and data["partial"] is False
    rows = list(csv.DictReader(io.StringIO((monday_file / "daily.csv").read_text("utf-8"))))
    assert rows[-1]["site"] == "SYSTEM" and rows[-1]["ga_occupancy_pct"] == "74.3"
    outline((monday_file / "daily.html").read_text(encoding="utf-8"))
    result = runner.invoke(cli, ["report", "daily", "--day", "2026-01-05", "--format", "csv"])
    assert result.exit_code == 0 and result.output.startswith("day,as_of,partial")


def test_cli_refuses_bad_input(monday_file: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "daily", "--day", "2999-01-01"])
    assert result.exit_code == 2 and "in the future" in result.output
    result = runner.invoke(cli, ["report", "daily", "--format", "pdf"])
    assert result.exit_code == 2 and "--format" in result.output
    result = runner.invoke(cli, ["report", "daily", "--day", "5/1/2026"])
    assert result.exit_code == 2
