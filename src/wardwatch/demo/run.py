"""Set up the demo: a fresh SQLite system, prefilled to realistic occupancy, then live flow.

Hospital beds are filled by :class:`~wardwatch.demo.generator.DemoGenerator`; virtual-ward
places only by :class:`~wardwatch.demo.wearables.SimulatedVirtualWard`, as monitored
enrolments with a few hours of readings behind them, so the live demo starts with a caseload
whose patients are all up to date. The front door
(:class:`~wardwatch.demo.frontdoor.SimulatedFrontDoor`) replays its last
:data:`FRONT_DOOR_HISTORY` hours the same way: crews waiting, patients in the EDs, decisions
to admit allocated by the bed manager, and the day's handover and ED figures so far.
"""

from __future__ import annotations

import random
import shutil
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from wardwatch.capacity.models import Bed, Site, Ward
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.clock import Clock, ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.demo.coordination import BedManager, Crew
from wardwatch.demo.frontdoor import SimulatedFrontDoor
from wardwatch.demo.generator import DEMO, DemoGenerator, WardPlan, plans_from_wards
from wardwatch.demo.wearables import SimulatedVirtualWard, los_days
from wardwatch.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "kent-medway.yaml"
HISTORY_DAYS = 30
#: The virtual ward's readings before the demo starts: every patient has a recent check.
WARM_UP = timedelta(hours=3)
WARM_UP_STEP = timedelta(minutes=10)
#: The ambulances' and EDs' history before the demo starts (a multiple of WARM_UP_STEP, at
#: least WARM_UP): long enough for ED stays past 4 h and the bed manager's admissions.
FRONT_DOOR_HISTORY = timedelta(hours=9)
#: Hospital admissions after this much of that history come through the simulated EDs (the
#: first decisions to admit come 2-5 h after the first arrivals), not the prefill.
ED_ADMITS_AFTER = timedelta(hours=3)


def demo_settings(data_dir: Path, speed: float = 60.0) -> Settings:
    """The demo always runs on its own SQLite file, never on WARDWATCH_DATABASE_URL: it
    loads an example system and admits synthetic patients, which must never reach a real
    database."""
    # Time runs fast in the demo: look for overdue tasks, unanswered alerts and missed
    # readings about once a simulated minute (0.5-2 real seconds), so escalations fire on
    # time in demo time rather than minutes late at high speeds.
    every = min(2.0, max(0.5, 60.0 / speed))
    return Settings(data_dir=data_dir, database_url=None, escalation_interval_seconds=every)


def first_acute_site(rt: Runtime) -> str:
    """The code of the demo's first acute hospital (for the task page link)."""
    with rt.db.read() as s:
        code = s.scalar(select(Site.code).where(Site.kind == "acute").order_by(Site.code))
    return code or "SITE"


def example_file() -> Path:
    if EXAMPLE.exists():
        return EXAMPLE
    raise FileNotFoundError("examples/kent-medway.yaml not found: run the demo from a clone")


def live_loop(rt: Runtime, clock: Clock, *, seed: int = 7) -> DemoGenerator:
    """The demo's loop (not started): patient flow through the hospital beds, the simulated
    people of the coordination loop, the ambulances and EDs, and the simulated virtual ward,
    which alone fills the virtual-ward places (the generator gets no virtual-ward plans, so
    the two never compete for a place). The app's own timer raises the ambulance delay
    alerts (``check_delays``), as it would for a real feed."""
    plans = ward_plans(rt)
    ward = SimulatedVirtualWard(rt, clock, plans, seed=seed)
    door = SimulatedFrontDoor(rt, clock, plans, seed=seed)
    hospital = [p for p in plans if p.site_kind != "virtual_ward"]
    return DemoGenerator(
        rt.capacity,
        clock,
        hospital,
        seed=seed,
        tasks=rt.tasks,
        flow=rt.flow,
        tickers=[ward],
        front_door=door,
    )


def ward_plans(rt: Runtime) -> list[WardPlan]:
    with rt.db.read() as s:
        rows = s.execute(
            select(
                Ward.code, Site.kind, func.count(Bed.id), Ward.sex_policy, Ward.specialty, Site.code
            )
            .join(Site, Ward.site_id == Site.id)
            .join(Bed, Bed.ward_id == Ward.id)
            .where(Bed.state != BedState.CLOSED.value)
            .group_by(Ward.code, Site.kind, Ward.sex_policy, Ward.specialty, Site.code)
        ).all()
    return plans_from_wards([(c, k, int(n), sp, spec, sc) for c, k, n, sp, spec, sc in rows])


def prepare(
    data_dir: Path,
    clock: Clock,
    *,
    system_file: Path | None = None,
    fresh: bool = True,
    seed: int = 7,
) -> int:
    """Create the demo database: load the system back-dated, then fill it as of now.

    Returns how many patients were admitted (virtual-ward enrolments included). Patients are
    admitted at back-dated times through the real services (with a manual clock), so the
    event log, lengths of stay and past SitRep snapshots are as consistent as live ones. The
    last :data:`FRONT_DOOR_HISTORY` hours also replay the ambulances and EDs, and the last
    :data:`WARM_UP` hours the virtual ward's readings and its team's work.
    """
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    now = clock.now()
    rng = random.Random(seed)
    past = ManualClock(now - timedelta(days=HISTORY_DAYS))
    rt = Runtime.build(demo_settings(data_dir), clock=past)
    try:
        rt.system.load(load_system_file(system_file or example_file()), DEMO)
        plans = ward_plans(rt)
        gen = DemoGenerator(rt.capacity, past, plans, seed=seed)
        ward = SimulatedVirtualWard(rt, past, plans, seed=seed)
        door = SimulatedFrontDoor(rt, past, plans, seed=seed)
        via_ed = now - FRONT_DOOR_HISTORY + ED_ADMITS_AFTER
        beds = {
            b.id: b
            for b in rt.capacity.list_beds(BedFilter(state=BedState.AVAILABLE, limit=1_000_000))
        }
        by_ward: dict[str, list[str]] = {}
        for bed in beds.values():
            by_ward.setdefault(bed.ward, []).append(bed.id)
        admissions: list[tuple[datetime, str | None, WardPlan]] = []
        for plan in plans:
            if plan.site_kind == "virtual_ward":  # enrolments, into whichever place is free
                for _ in range(round(plan.beds * ward.config.occupancy)):
                    age = min(rng.expovariate(1 / los_days(plan)), HISTORY_DAYS - 0.01)
                    admissions.append((now - timedelta(days=age), None, plan))
                continue
            free = by_ward.get(plan.code, [])
            rng.shuffle(free)
            for bed_id in free[: round(len(free) * plan.occupancy)]:
                age = min(rng.expovariate(1 / plan.los_days), HISTORY_DAYS - 0.01)
                when = now - timedelta(days=age)
                if when >= via_ed and rng.random() < door.shares.get(plan.code, 0.0):
                    continue  # this patient comes through the ED's history instead
                admissions.append((when, bed_id, plan))
        admissions.sort(key=lambda a: a[0])
        queue = deque(admissions)

        def admit_until(until: datetime) -> None:
            while queue and queue[0][0] <= until:
                when, bed_id, plan = queue.popleft()
                past.set(max(when, past.now()))
                if bed_id is None:
                    ward.enrol(plan, course=False)
                else:
                    gen.admit(beds[bed_id], plan)

        # Admissions in time order; over the last hours the front door and then the virtual
        # ward run alongside.
        admit_until(now - FRONT_DOOR_HISTORY)
        past.set(max(now - FRONT_DOOR_HISTORY, past.now()))
        _last_hours(rt, past, now, admit_until, ward, door, seed)
        _untidy_some_beds(rt, rng)
        return gen.counts["admitted"] + ward.counts["enrolled"]
    finally:
        rt.close()


def _last_hours(
    rt: Runtime,
    past: ManualClock,
    now: datetime,
    admit_until: Callable[[datetime], None],
    ward: SimulatedVirtualWard,
    door: SimulatedFrontDoor,
    seed: int,
) -> None:
    """Replay the hours before ``now``: admissions, the ambulances and EDs with a bed
    manager and porters for their decisions to admit, the app's delay alerts, and from
    :data:`WARM_UP` before the end the virtual ward's quiet history."""
    people = random.Random(f"wardwatch-demo-history:{seed}")
    crew, manager = Crew(rt.tasks, past, people), BedManager(rt.flow, rt.tasks, past, people)
    warm = False
    while past.now() < now:
        if not warm and past.now() >= now - WARM_UP:
            ward.warm_up(past.now(), now)
            warm = True
        tick = min(past.now() + WARM_UP_STEP, now)
        admit_until(tick)
        past.set(max(tick, past.now()))
        if warm:
            ward.quiet_tick(past.now())
        door.tick(past.now())
        manager.step()
        crew.step()
        rt.frontdoor.check_delays()  # what the app's timer does


def _untidy_some_beds(rt: Runtime, rng: random.Random) -> None:
    """A real board at any moment has beds waiting for a clean, being cleaned, blocked (a
    place on a virtual ward, at the patient's home, is never any of these)."""
    free = rt.capacity.list_beds(BedFilter(state=BedState.AVAILABLE, limit=1_000_000))
    free = [b for b in free if not b.virtual]
    rng.shuffle(free)
    n = len(free)
    plan = (
        [(BedState.AWAITING_CLEAN, None)] * (n // 4)
        + [(BedState.CLEANING, None)] * (n // 10)
        + [(BedState.BLOCKED, "infection control: side room needed")] * 3
        + [(BedState.BLOCKED, "maintenance: broken bed rail")] * 2
    )
    for bed, (state, reason) in zip(free, plan, strict=False):
        if state == BedState.CLEANING:
            rt.capacity.change_bed_state(bed.id, BedState.AWAITING_CLEAN, None, DEMO)
        rt.capacity.change_bed_state(bed.id, state, reason, DEMO)


def resume_time(data_dir: Path, now: datetime) -> datetime:
    """Where a kept demo's sped-up clock should start: not before what it already logged."""
    rt = Runtime.build(demo_settings(data_dir), migrate_db=False)
    try:
        with rt.db.read() as s:
            latest = s.scalar(select(func.max(EventRecord.at)))
    finally:
        rt.close()
    return max(now, latest) if latest else now
