"""A synthetic patient flow at realistic daily rates, driven through the real services.

Rates follow Little's law: a ward of ``n`` open beds aiming at occupancy ``u`` with a mean
length of stay ``L`` days admits about ``n*u/L`` patients a day. Lengths of stay are
exponential with means by kind of place (DOMAIN.md: emergency ~9 days; short on assessment
units; weeks in care homes). Discharges cluster in the day, as they do in hospitals. Beds go
through cleaning with realistic delays.

With the coordination services (tasks and flow), the demo runs the whole loop instead:
discharges ask housekeeping for a clean, simulated cleaners and porters answer their tasks
(:mod:`wardwatch.demo.coordination`), and acute admissions arrive as ED decisions to admit
that a simulated bed manager allocates, so turnaround and waits appear live. With the
simulated front door (:mod:`wardwatch.demo.frontdoor`) about half of those are its EDs'
decisions to admit, and the generator queues only the rest. In the live demo, virtual-ward
places are not this generator's: :mod:`wardwatch.demo.wearables` fills them with monitored
enrolments (:func:`wardwatch.demo.run.live_loop` passes it no virtual-ward plans and drives
the simulated virtual ward as one of its tickers).
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

from wardwatch.capacity.schemas import (
    AdmitRequest,
    BedRead,
    DischargeRequest,
    PatientIn,
    TransferRequest,
)
from wardwatch.capacity.service import BedFilter, CapacityService
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import WardWatchError
from wardwatch.core.ids import new_id
from wardwatch.demo.coordination import BedManager, Crew
from wardwatch.flow.schemas import BedRequestCreate
from wardwatch.flow.service import FlowService
from wardwatch.tasks.service import TaskService

log = logging.getLogger(__name__)
DEMO = Actor(name="demo-generator", role="integration")
LONDON = ZoneInfo("Europe/London")

#: mean length of stay in days by site kind, and the occupancy each kind runs at.
MEAN_LOS_DAYS = {"acute": 5.5, "community": 21.0, "care_home": 120.0, "virtual_ward": 10.0}
TARGET_OCCUPANCY = {"acute": 0.935, "community": 0.9, "care_home": 0.9, "virtual_ward": 0.75}
ASSESSMENT_LOS_DAYS = 1.2  # AMU, SAU: patients move on within a day or two
MEAN_WAIT_TO_CLEAN_MIN = 75.0
MEAN_CLEANING_MIN = 40.0
TRANSFER_SHARE = 0.6  # of assessment-unit leavers, how many move to a ward rather than home


@dataclass(frozen=True, slots=True)
class WardPlan:
    code: str
    site_kind: str
    beds: int
    los_days: float
    occupancy: float
    sex_policy: str
    assessment: bool
    site: str = ""
    specialty: str = ""

    @property
    def admissions_per_day(self) -> float:
        return self.beds * self.occupancy / self.los_days


_DISCHARGE_PROFILE = [0.2] * 7 + [0.3] * 3 + [2.0] * 9 + [0.2] * 5  # by local hour 0-23
_DISCHARGE_SCALE = 24 / sum(_DISCHARGE_PROFILE)


class Ticker(Protocol):
    """Something else the demo loop drives on the same clock (the simulated virtual ward)."""

    def tick(self, now: datetime) -> None: ...


class FrontDoor(Ticker, Protocol):
    """The simulated ambulances and EDs (:mod:`wardwatch.demo.frontdoor`): ticked before
    the bed manager looks, so a decision to admit is allocated in the same step."""

    @property
    def shares(self) -> Mapping[str, float]:
        """Ward code → the share of its acute admissions that come as ED decisions to
        admit (the generator queues only the rest itself)."""
        ...


def discharge_weight(local_hour: int) -> float:
    """Relative discharge rate by hour, averaging 1 over a day: most leave 10:00-19:00."""
    return _DISCHARGE_PROFILE[local_hour] * _DISCHARGE_SCALE


class DemoGenerator:
    def __init__(
        self,
        capacity: CapacityService,
        clock: Clock,
        plans: list[WardPlan],
        seed: int = 7,
        *,
        tasks: TaskService | None = None,
        flow: FlowService | None = None,
        tickers: Sequence[Ticker] = (),
        front_door: FrontDoor | None = None,
    ) -> None:
        self.capacity = capacity
        self.clock = clock
        self.plans = {p.code: p for p in plans}
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self.counts = {
            "admitted": 0,
            "discharged": 0,
            "transferred": 0,
            "cleaned": 0,
            "requested": 0,
        }
        self.flow = flow
        self.crew = Crew(tasks, clock, self.rng) if tasks else None
        self.manager = BedManager(flow, tasks, clock, self.rng) if tasks and flow else None
        self.tickers = list(tickers)
        self.front_door = front_door

    # --- one step of simulated time ------------------------------------------------------

    def step(self, dt: timedelta) -> None:
        days = dt.total_seconds() / 86400
        beds = self.capacity.list_beds(BedFilter(limit=1_000_000))
        by_state: dict[BedState, list[BedRead]] = {}
        for bed in beds:
            by_state.setdefault(bed.state, []).append(bed)
        self._discharges(by_state.get(BedState.OCCUPIED, []), days)
        if self.crew is None:
            self._cleaning(by_state, dt)
        else:
            self.crew.step()
        self._admissions(by_state.get(BedState.AVAILABLE, []), days)
        if self.front_door is not None:
            self.front_door.tick(self.clock.now())
        if self.manager is not None:
            self.manager.step()
        for ticker in self.tickers:
            ticker.tick(self.clock.now())

    def _discharges(self, occupied: list[BedRead], days: float) -> None:
        weight = discharge_weight(self.clock.now().astimezone(LONDON).hour)
        for bed in occupied:
            plan = self.plans.get(bed.ward)
            if plan is None or not bed.stay_id:
                continue
            if self.rng.random() >= 1 - math.exp(-days * weight / plan.los_days):
                continue
            if (
                plan.assessment
                and self.rng.random() < TRANSFER_SHARE
                and self._transfer_onwards(bed)
            ):
                continue
            req = DischargeRequest(destination=self._destination(plan), pathway=self._pathway())
            self._try(partial(self.capacity.discharge, bed.stay_id, req, DEMO), "discharged")

    def _transfer_onwards(self, bed: BedRead) -> bool:
        targets = [
            b
            for b in self.capacity.list_beds(BedFilter(site=bed.site, state=BedState.AVAILABLE))
            if b.ward in self.plans and not self.plans[b.ward].assessment
        ]
        if not targets:
            return False
        target = self.rng.choice(targets)
        req = TransferRequest(bed_id=target.id)
        return self._try(
            partial(self.capacity.transfer, bed.stay_id or "", req, DEMO), "transferred"
        )

    def _cleaning(self, by_state: dict[BedState, list[BedRead]], dt: timedelta) -> None:
        minutes = dt.total_seconds() / 60
        for bed in by_state.get(BedState.AWAITING_CLEAN, []):
            if self.rng.random() < 1 - math.exp(-minutes / MEAN_WAIT_TO_CLEAN_MIN):
                self._try(
                    partial(self.capacity.change_bed_state, bed.id, BedState.CLEANING, None, DEMO),
                    None,
                )
        for bed in by_state.get(BedState.CLEANING, []):
            if self.rng.random() < 1 - math.exp(-minutes / MEAN_CLEANING_MIN):
                self._try(
                    partial(self.capacity.change_bed_state, bed.id, BedState.AVAILABLE, None, DEMO),
                    "cleaned",
                )

    def _admissions(self, available: list[BedRead], days: float) -> None:
        free: dict[str, list[BedRead]] = {}
        for bed in available:
            free.setdefault(bed.ward, []).append(bed)
        shares = self.front_door.shares if self.front_door and self.flow else {}
        for plan in self.plans.values():
            rate = plan.admissions_per_day * (1 - shares.get(plan.code, 0.0))
            for _ in range(_poisson(self.rng, rate * days)):
                if self.flow is not None and plan.site_kind == "acute" and plan.site:
                    self.request_bed(plan)
                    continue
                beds = free.get(plan.code)
                if not beds:
                    break  # ward full: in real life a decision-to-admit wait
                self.admit(beds.pop(self.rng.randrange(len(beds))), plan)

    def admit(self, bed: BedRead, plan: WardPlan) -> bool:
        sex = plan.sex_policy if plan.sex_policy != "mixed" else self.rng.choice(["male", "female"])
        los = self.rng.expovariate(1 / plan.los_days)
        edd = (self.clock.now() + timedelta(days=max(1.0, los))).astimezone(LONDON).date()
        req = AdmitRequest(
            bed_id=bed.id,
            source=self.rng.choice(["ed", "ed", "gp", "elective"]),
            patient=PatientIn(local_id=new_id("demo"), sex=sex),
            expected_discharge_date=edd,
        )
        return self._try(partial(self.capacity.admit, req, DEMO), "admitted")

    def request_bed(self, plan: WardPlan) -> bool:
        """An ED decision to admit: a bed request the bed manager will allocate."""
        assert self.flow is not None  # noqa: S101 -- only called with the flow service
        sex = plan.sex_policy if plan.sex_policy != "mixed" else self.rng.choice(["male", "female"])
        req = BedRequestCreate(
            patient=PatientIn(local_id=new_id("demo"), sex=sex),
            site=plan.site,
            specialty=plan.specialty,
            source="ed",
            priority=self.rng.choices(["emergency", "urgent", "routine"], weights=[1, 6, 3])[0],
            isolation=self.rng.random() < 0.05,
            from_location=f"ED cubicle {self.rng.randint(1, 30)}",
        )
        return self._try(partial(self.flow.create, req, DEMO), "requested")

    # --- helpers -------------------------------------------------------------------------

    def _destination(self, plan: WardPlan) -> str:
        if plan.site_kind == "care_home":
            return self.rng.choice(["died", "hospital", "usual residence"])
        return self.rng.choices(
            ["usual residence", "care home", "community hospital"], weights=[85, 7, 8]
        )[0]

    def _pathway(self) -> int:
        return self.rng.choices([0, 1, 2, 3], weights=[50, 30, 12, 8])[0]

    def _try(self, action: Callable[[], object], counter: str | None) -> bool:
        try:
            action()
        except WardWatchError as exc:  # the board moved under us: skip, as a person would
            log.debug("demo step skipped: %s", exc.message)
            return False
        if counter:
            self.counts[counter] += 1
        return True

    # --- running -------------------------------------------------------------------------

    def run_forever(self, tick_seconds: float) -> None:
        """Step every ``tick_seconds`` of real time, by however much the clock moved."""
        last = self.clock.now()
        while not self._stop.wait(tick_seconds):
            now = self.clock.now()
            try:
                self.step(now - last)
            except Exception:  # keep the demo alive; the failure is logged
                log.exception("demo generator step failed")
            last = now

    def start(self, tick_seconds: float = 1.0) -> threading.Thread:
        thread = threading.Thread(
            target=self.run_forever, args=(tick_seconds,), name="demo-generator", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means of one step."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def plans_from_wards(wards: list[tuple[str, str, int, str, str, str]]) -> list[WardPlan]:
    """(ward code, site kind, open beds, sex policy, specialty, site code) → flow plans."""
    out = []
    for code, site_kind, beds, sex_policy, specialty, site in wards:
        assessment = specialty in ("acute medicine",) or code.endswith(("-AMU", "-SAU"))
        los = ASSESSMENT_LOS_DAYS if assessment else MEAN_LOS_DAYS[site_kind]
        out.append(
            WardPlan(
                code=code,
                site_kind=site_kind,
                beds=beds,
                los_days=los,
                occupancy=TARGET_OCCUPANCY[site_kind],
                sex_policy=sex_policy,
                assessment=assessment,
                site=site,
                specialty=specialty,
            )
        )
    return out


def prefill_times(rng: random.Random, now: datetime, los_days: float) -> datetime:
    """When a patient in a bed now was admitted: the age of a stay in a steady state."""
    return now - timedelta(days=rng.expovariate(1 / los_days))
