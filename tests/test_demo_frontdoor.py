"""The demo's front door (ambulances and EDs), run for a day of demo time on the injected
clock: on SQLite and PostgreSQL, through the real services, with the demo's bed manager and
porters admitting the EDs' decisions to admit; then the prepared demo's busy start."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import DEMO_OPENED, EXAMPLE_SYSTEM, START, copy_demo
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import make_engine
from wardwatch.demo.coordination import BedManager, Crew
from wardwatch.demo.fd_rates import Config, ed_shares, handover_minutes
from wardwatch.demo.frontdoor import SimulatedFrontDoor
from wardwatch.demo.generator import DemoGenerator, plans_from_wards
from wardwatch.demo.run import live_loop, ward_plans
from wardwatch.frontdoor.schemas import AttendanceRead, HandoverRead
from wardwatch.runtime import Runtime

FULL = "XMT01"  # Maidstone: 488 open beds, every one taken before the day starts
DAY = datetime(2026, 1, 6, 0, 0, tzinfo=UTC)  # a local midnight (GMT in January)
STEP = timedelta(minutes=15)
BEDS = {"XEK01": 842, "XMT01": 488, "XMW01": 670}


def _example(rt: Runtime) -> None:
    rt.system.load(load_system_file(EXAMPLE_SYSTEM), SYSTEM)


def _run(rt: Runtime, clock: ManualClock, door: SimulatedFrontDoor, hours: float) -> None:
    """The demo loop's front-door part: the ambulances and EDs, the bed manager and porters,
    and the app's timer raising ambulance delay alerts."""
    rng = random.Random(3)
    crew, manager = Crew(rt.tasks, clock, rng), BedManager(rt.flow, rt.tasks, clock, rng)
    for _ in range(round(hours * 3600 / STEP.total_seconds())):
        clock.advance(STEP)
        door.tick(clock.now())
        manager.step()
        crew.step()
        rt.frontdoor.check_delays()


def _handovers(rt: Runtime) -> list[HandoverRead]:
    return rt.frontdoor.handovers.list(open_only=False, since=DAY - timedelta(days=1))


def _attendances(rt: Runtime) -> list[AttendanceRead]:
    return rt.frontdoor.ed.list(open_only=False, limit=100_000)


# --- the model, by hand -------------------------------------------------------------------


def test_handover_delays_grow_with_occupancy_as_calibrated() -> None:
    z = NormalDist()

    def over(occupancy: float, minutes: float) -> float:
        """The share of crews waiting longer than ``minutes`` (the z at which they do)."""
        lo, hi = -6.0, 6.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if handover_minutes(occupancy, mid) < minutes else (lo, mid)
        return 1 - z.cdf(lo)

    assert handover_minutes(0.80, 0) == handover_minutes(0.85, 0) == 12.0
    assert handover_minutes(0.98, 0) == handover_minutes(1.0, 0) == 32.0
    for luck in (0.0, 1.0, 2.0):
        waits = [handover_minutes(u / 100, luck) for u in range(80, 101)]
        assert waits == sorted(waits) and waits[0] < waits[-1]
    assert over(0.85, 15) < 0.35 and over(0.85, 30) < 0.02
    assert 0.15 < over(0.93, 30) < 0.35 and over(0.93, 60) < 0.05
    assert over(1.0, 30) > 0.5 and 0.1 < over(1.0, 60) < 0.25
    assert handover_minutes(1.0, -10) == 4.0 and handover_minutes(1.0, 10) == 360.0


def test_the_eds_take_their_share_of_acute_admissions() -> None:
    plans = plans_from_wards(
        [
            ("A-AMU", "acute", 40, "mixed", "acute medicine", "A"),
            ("A-MED", "acute", 440, "mixed", "general medicine", "A"),
            ("A-MAT", "acute", 20, "female", "maternity", "A"),
            ("C-REH", "community", 30, "mixed", "rehabilitation", "C"),
        ]
    )
    # 500 beds: 62.5 ambulances and 125 walk-ins a day, 31.25 + 18.75 = 50 admitted; the
    # ED's wards admit 40*0.935/1.2 + 440*0.935/5.5 = 105.97 a day.
    shares = ed_shares(plans)
    assert set(shares) == {"A-AMU", "A-MED"}
    assert shares["A-AMU"] == shares["A-MED"] == pytest.approx(50 / 105.97, abs=1e-3)
    assert ed_shares(plans, Config(ambulances_per_bed_day=10))["A-MED"] == 1.0


# --- a day at the example system's front doors ---------------------------------------------


@pytest.fixture
def backend() -> str:
    """The demo runs on SQLite (its default); the services it drives are tested on both."""
    return "sqlite"


def test_a_day_at_the_front_doors_with_one_hospital_full(rt: Runtime, clock: ManualClock) -> None:
    """One run (the checks below share it: the run is the expensive part)."""
    _example(rt)
    plans = ward_plans(rt)
    gen = DemoGenerator(rt.capacity, clock, plans, seed=1)
    for bed in rt.capacity.list_beds(BedFilter(site=FULL, state=BedState.AVAILABLE, limit=10**6)):
        assert gen.admit(bed, gen.plans[bed.ward])
    assert rt.occupancy.live()["sites"][_index(rt, FULL)]["general_acute"]["occupancy"] == 1.0
    clock.set(DAY)
    door = SimulatedFrontDoor(rt, clock, plans, seed=11)
    _run(rt, clock, door, hours=24)
    assert door.counts["refused"] == 0, door.counts
    _every_site_sees_ambulances_at_its_rate_bunched_in_the_day(rt)
    _the_full_hospital_keeps_crews_waiting_and_the_control_centre_hears(rt)
    _pre_alerts_and_clears_are_as_a_crew_sends_them(rt)
    _ed_attendances_decisions_to_admit_and_departures(rt)


def _index(rt: Runtime, code: str) -> int:
    return [s["code"] for s in rt.occupancy.live()["sites"]].index(code)


def _every_site_sees_ambulances_at_its_rate_bunched_in_the_day(rt: Runtime) -> None:
    summary = rt.frontdoor.handover_summary(DAY.date())
    arrivals = {s["site"]: s["arrivals"] for s in summary["sites"]}
    assert set(arrivals) == set(BEDS)
    for site, beds in BEDS.items():  # 0.125 a bed a day: ~61, ~84, ~105
        assert 0.7 * beds / 8 < arrivals[site] < 1.3 * beds / 8, arrivals
    hours = Counter(h.arrived_at.hour for h in _handovers(rt) if h.arrived_at)
    day = sum(n for hour, n in hours.items() if 10 <= hour < 18)  # a third of the day...
    assert day > 0.38 * sum(hours.values()), hours  # ...but ~46% of the ambulances


def _the_full_hospital_keeps_crews_waiting_and_the_control_centre_hears(rt: Runtime) -> None:
    summary = rt.frontdoor.handover_summary(DAY.date())
    by_site = {s["site"]: s for s in summary["sites"]}
    full = by_site[FULL]
    assert full["over_30"] > 0.3 * full["arrivals"] and full["over_60"] >= 1, full
    for site in set(BEDS) - {FULL}:  # empty hospitals: most within 15 minutes
        other = by_site[site]
        assert other["over_30"] < 0.1 * other["arrivals"], other
        assert other["within_15"] > 0.5 * other["arrivals"], other
    assert full["hours_lost"] > max(by_site[s]["hours_lost"] for s in set(BEDS) - {FULL})
    with rt.db.read() as s:
        delayed = [
            r.data or {}
            for r in s.scalars(select(EventRecord).where(EventRecord.type == "handover.delayed"))
        ]
    at_full = Counter(d["minutes"] for d in delayed if d["site"] == FULL)
    assert at_full[30] >= 5 and at_full[45] >= 1, at_full
    feed = rt.notify.feed(["role:control-centre"], limit=10_000)
    assert sum(n["event"] == "handover.delayed" for n in feed) == len(delayed)


def _pre_alerts_and_clears_are_as_a_crew_sends_them(rt: Runtime) -> None:
    handovers = _handovers(rt)
    alerted = [h for h in handovers if h.pre_alert_at is not None]
    assert alerted and all(h.category in ("C1", "C2") for h in alerted)
    assert all(h.pre_alert_at is None for h in handovers if h.category in ("C3", "C4"))
    assert all(h.pre_alert_at is not None for h in handovers if h.category == "C1")
    for h in alerted:
        assert h.arrived_at and h.pre_alert_at and h.expected_at
        ahead = (h.arrived_at - h.pre_alert_at).total_seconds() / 60
        assert 10 <= ahead <= 20 and abs((h.expected_at - h.arrived_at).total_seconds()) <= 180
    cleared = [h for h in handovers if h.status == "clear"]
    assert len(cleared) > 0.9 * len(handovers)
    for h in cleared:
        assert h.clear_at and h.handover_at
        assert 10 <= (h.clear_at - h.handover_at).total_seconds() / 60 <= 20
    waiting = {h.vehicle for h in handovers if h.status == "waiting"}
    assert len(waiting) == sum(h.status == "waiting" for h in handovers)  # one door each


def _ed_attendances_decisions_to_admit_and_departures(rt: Runtime) -> None:
    atts = _attendances(rt)
    handovers = {h.id: h for h in _handovers(rt)}
    by_ambulance = [a for a in atts if a.handover_id]
    assert len(by_ambulance) == sum(h.arrived_at is not None for h in handovers.values())
    assert 2.4 < len(atts) / len(by_ambulance) < 3.6  # walk-ins twice the ambulances
    decided = [a for a in atts if a.dta_at is not None]
    assert 0.18 < len(decided) / len(atts) < 0.36, len(decided) / len(atts)
    for a in decided:
        assert a.bed_request_id is not None and a.dta_at is not None
        req = rt.flow.get(a.bed_request_id)
        assert (req.source, req.site, req.from_location) == ("ed", a.site, f"ED {a.reference}")
        assert req.decided_at == a.dta_at and a.dta_at - a.arrived_at >= timedelta(hours=2)
        h = handovers.get(a.handover_id or "")
        assert h is None or (h.handover_at is not None and a.dta_at > h.handover_at)
        if a.site == FULL:  # no bed anywhere in the hospital: the patient waits in the ED
            assert req.status == "waiting" and a.departed_at is None
    admitted = [a for a in atts if a.disposition == "admitted"]
    assert admitted and all(a.site != FULL for a in admitted)
    for a in admitted:
        req = rt.flow.get(a.bed_request_id or "")
        assert req.status == "arrived" and req.arrived_at == a.departed_at and req.ward
    home = [a for a in atts if a.departed_at is not None and a.disposition != "admitted"]
    assert {a.disposition for a in home} >= {"discharged", "transferred"}
    within = sum(a.hours_in_department <= 4 for a in home)
    assert 0.65 < within / len(home) < 0.92, within / len(home)  # most, with a tail
    now = rt.frontdoor.ed_summary(DAY.date())["sites"][_ed_index(rt, FULL)]["now"]
    assert now["waiting_for_bed"] == sum(a.site == FULL for a in decided)
    assert now["dta_over_4h"] > 0


def _ed_index(rt: Runtime, code: str) -> int:
    return [c for c, _ in rt.frontdoor.front_door_sites()].index(code)


# --- the same seed, the same front door ----------------------------------------------------


def _fingerprint(rt: Runtime) -> dict[str, Any]:
    return {
        "handovers": sorted(
            (h.site, h.incident, h.vehicle, h.category, h.status, *_times(h))
            for h in _handovers(rt)
        ),
        "attendances": sorted(
            (a.site, a.reference, a.arrived_at, a.dta_at, a.departed_at, a.disposition)
            for a in _attendances(rt)
        ),
    }


def _times(h: HandoverRead) -> tuple[datetime | None, ...]:
    return (h.pre_alert_at, h.expected_at, h.arrived_at, h.handover_at, h.clear_at)


def _replay(template: Path, where: Path, seed: int, hours: float) -> dict[str, Any]:
    where.mkdir()
    shutil.copy(template, where / "wardwatch.db")
    engine = make_engine(f"sqlite:///{where / 'wardwatch.db'}")
    clock = ManualClock(START)
    rt = Runtime(settings=Settings(data_dir=where), clock=clock, engine=engine)
    try:
        _example(rt)
        door = SimulatedFrontDoor(rt, clock, ward_plans(rt), seed=seed)
        for _ in range(round(hours * 4)):
            clock.advance(STEP)
            door.tick(clock.now())
        assert door.counts["refused"] == 0
        return _fingerprint(rt)
    finally:
        rt.close()
        engine.dispose()


def test_the_same_seed_gives_the_same_front_door(sqlite_template: Path, tmp_path: Path) -> None:
    first = _replay(sqlite_template, tmp_path / "a", seed=5, hours=5)
    assert first["handovers"] and first["attendances"]
    assert any(row[3] for row in first["attendances"])  # decisions to admit, too
    assert _replay(sqlite_template, tmp_path / "b", seed=5, hours=5) == first
    other = _replay(sqlite_template, tmp_path / "c", seed=6, hours=1)
    assert other["handovers"] != first["handovers"][: len(other["handovers"])]


# --- the prepared demo: busy from the first second -----------------------------------------


def test_the_prepared_demo_opens_with_a_busy_front_door_and_carries_it_on(
    demo_dir: Path, tmp_path: Path
) -> None:
    prepared = copy_demo(demo_dir, tmp_path / "demo")
    clock = ManualClock(DEMO_OPENED)
    rt = Runtime.build(Settings(data_dir=prepared), clock=clock)
    try:
        snap = rt.occupancy.live()
        assert 0.90 <= snap["system"]["general_acute"]["occupancy"] <= 0.96
        ed = rt.frontdoor.ed_summary()
        so_far = rt.frontdoor.handover_summary()
        for site in so_far["sites"]:  # the day's figures so far, at every front door
            assert site["arrivals"] > 10 and site["handed_over"] > 10, site
        for site in ed["sites"]:
            assert site["now"]["in_department"] > 10 and site["day"]["departures"] > 10, site
        assert ed["system"]["day"]["admitted"] > 0  # the bed manager admitted some already
        assert ed["system"]["now"]["over_4h"] > 0
        on_the_way = [h for h in rt.frontdoor.handovers.list() if h.status == "waiting"]
        in_ed = {a.id for a in rt.frontdoor.ed.list() if a.dta_at is None}
        gen = live_loop(rt, clock, seed=7)
        door = gen.front_door
        assert isinstance(door, SimulatedFrontDoor)
        for _ in range(2 * 12):  # two hours of the live demo, in 5-minute steps
            clock.advance(timedelta(minutes=5))
            gen.step(timedelta(minutes=5))
            rt.frontdoor.check_delays()
        assert door.counts["refused"] == 0, door.counts
        assert door.counts["adopted crews"] >= len(on_the_way)
        assert door.counts["adopted patients"] == len(in_ed)
        for h in on_the_way:  # the crews found waiting were seen through
            assert rt.frontdoor.handovers.get(h.id).status in ("handed_over", "clear")
        still = {a.id for a in rt.frontdoor.ed.list() if a.dta_at is None}
        assert len(still & in_ed) < 0.5 * len(in_ed)
        assert door.counts["arrival"] > 10 and door.counts["decided"] > 0
    finally:
        rt.close()
