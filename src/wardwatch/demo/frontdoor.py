"""The demo's front door: an ambulance service and an emergency department per acute site.

Rates per acute site, scaled by its open beds (the reasons are in :class:`Config`): ~0.125
ambulance conveyances a bed a day (the example's 488/670/842-bed hospitals see ~61/84/105),
bunched in the late morning and afternoon; twice as many walk-ins; about a quarter of
attendances admitted, 2-5 h after arrival; the rest leave after a log-normal stay (most
within 4 h, a tail beyond). Handovers take longer as the site's G&A occupancy rises
(:func:`handover_minutes`); vehicles clear 10-20 min after handover; C1 patients and some
C2 are pre-alerted 10-20 min ahead.

A decision to admit is a bed request (the ED service queues it); the demo's bed manager
allocates it and the porters bring the patient up, which ends the attendance. So that the
hospital is not admitted to twice, :func:`ed_shares` tells the generator which part of each
ward's acute admissions now comes through the simulated ED.

Everything goes through the real services on the demo's clock. Arrivals are drawn ahead
from per-site streams of the seed and every step is stamped with its own time, so the same
seed on the same clock gives the same front door. Crews and patients this object did not
bring (the prepared history, a kept demo) are taken on at its first tick and seen through.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import select

from wardwatch.capacity.schemas import PatientIn, Sex
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import WardWatchError
from wardwatch.demo.fd_rates import (
    AMBULANCE_BY_HOUR,
    CATEGORIES,
    CATEGORY_WEIGHTS,
    WALK_IN_BY_HOUR,
    Config,
    acute_beds,
    ed_plans,
    ed_shares,
    handover_minutes,
)
from wardwatch.demo.generator import LONDON, WardPlan
from wardwatch.flow.schemas import RequestPriority
from wardwatch.frontdoor.models import Attendance, Handover
from wardwatch.frontdoor.schemas import (
    AttendanceIn,
    DecisionIn,
    DepartureIn,
    Disposition,
    HandoverMessage,
    HandoverRead,
    HandoverStep,
)
from wardwatch.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICE = "SECAMB"
FEED = Actor(name="demo-secamb-feed", role="ambulance")
ED_SYSTEM = Actor(name="demo-ed-system", role="integration")
ED_DOCTOR = Actor(name="demo-ed-clinician", role="clinician")

PRIORITIES: list[RequestPriority] = ["emergency", "urgent", "routine"]
LEAVING: list[Disposition] = ["discharged", "left", "transferred"]
_NUMBER = re.compile(r"(\d+)$")
FLEET = 400  # call signs of the simulated ambulance service
LEAD = timedelta(minutes=30)  # arrivals are drawn this far ahead, so pre-alerts come first
NEXT: dict[HandoverStep, HandoverStep] = {"pre_alert": "arrival", "arrival": "handover"}
NEXT["handover"] = "clear"


@dataclass(slots=True)
class _Patient:
    site: str
    reference: str
    local_id: str
    sex: Sex
    admit: bool
    specialty: str
    priority: RequestPriority
    isolation: bool
    dta_after: timedelta
    stay: timedelta
    disposition: Disposition
    attendance_id: str | None = None


@dataclass(slots=True)
class _Crew:
    site: str
    incident: str
    vehicle: str
    category: str
    arrival_at: datetime
    expected_at: datetime | None
    z: float
    clear_after: timedelta
    patient: _Patient | None


class SimulatedFrontDoor:
    """Ambulances and EDs at every acute site of ``plans``, driven by :meth:`tick`."""

    def __init__(
        self,
        rt: Runtime,
        clock: Clock,
        plans: Sequence[WardPlan],
        *,
        seed: int = 7,
        config: Config | None = None,
    ) -> None:
        self.rt = rt
        self.clock = clock
        self.config = config or Config()
        self.beds = acute_beds(plans)
        self.sites = sorted(self.beds)
        #: Ward code → the share of its acute admissions this front door decides on.
        self.shares = ed_shares(plans, self.config)
        self._wards = {s: ed_plans(plans, s) for s in self.sites}
        self._streams = [(s, k) for s in self.sites for k in ("ambulance", "walk_in")]
        self._rng = {
            (s, k): random.Random(f"wardwatch-demo-fd:{seed}:{s}:{k}") for s, k in self._streams
        }
        self._adopt_rng = random.Random(f"wardwatch-demo-fd:{seed}:adopt")
        self._profile = {
            k: [24 * v / sum(vs) for v in vs]
            for k, vs in (("ambulance", AMBULANCE_BY_HOUR), ("walk_in", WALK_IN_BY_HOUR))
        }
        self._next: dict[tuple[str, str], datetime] = {}
        self._queue: list[tuple[datetime, int, Callable[[datetime], None]]] = []
        self._n = 0
        self._busy: set[str] = set()
        self._seq = {"incident": 0, "attendance": 0}
        self._occupancy: dict[str, float | None] | None = None
        self._started = False
        self._last_sync: datetime | None = None
        self.counts: Counter[str] = Counter()  # what happened, for tests and curiosity

    # --- the loop ------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """Draw the arrivals up to ``now`` + :data:`LEAD`, then play every step that is due,
        in time order, each stamped with its own time."""
        self._occupancy = None
        if not self._started:
            self._start(now)
        for key in self._streams:
            self._draw(key, now + LEAD)
        while self._queue and self._queue[0][0] <= now:
            at, _, step = heapq.heappop(self._queue)
            step(at)
        if self._last_sync is None or now - self._last_sync >= timedelta(minutes=30):
            self._last_sync = now
            self._release_cancelled(now)

    def _start(self, now: datetime) -> None:
        self._started = True
        # Numbers go on from the highest sent (some drawn ahead were never sent).
        with self.rt.db.read() as s:
            incidents = s.scalars(select(Handover.incident).where(Handover.service == SERVICE))
            self._seq["incident"] = _last_number(incidents)
            self._seq["attendance"] = _last_number(s.scalars(select(Attendance.reference)))
        for key in self._streams:
            self._next[key] = now + self._gap(key)
        self._adopt_crews(now)
        self._adopt_patients(now)

    def _at(self, at: datetime, step: Callable[[datetime], None]) -> None:
        self._n += 1
        heapq.heappush(self._queue, (at, self._n, step))

    def _gap(self, key: tuple[str, str]) -> timedelta:
        """Time to the next candidate arrival, at the stream's peak hourly rate."""
        per_day = self.beds[key[0]] * self.config.ambulances_per_bed_day
        if key[1] == "walk_in":
            per_day *= self.config.walk_ins_per_ambulance
        return timedelta(days=self._rng[key].expovariate(per_day * max(self._profile[key[1]])))

    def _draw(self, key: tuple[str, str], until: datetime) -> None:
        """Arrivals as a Poisson process whose rate follows the hour of day (by thinning:
        candidates at the peak rate, each kept with the hour's share of the peak)."""
        site, kind = key
        rng, profile = self._rng[key], self._profile[kind]
        t = self._next[key]
        while t <= until:
            if rng.random() < profile[t.astimezone(LONDON).hour] / max(profile):
                if kind == "ambulance":
                    self._new_crew(site, t, rng)
                else:
                    self._at(t, partial(self._attend, self._new_patient(site, rng, False)))
            t += self._gap(key)
        self._next[key] = t

    # --- who arrives ---------------------------------------------------------------------

    def _new_patient(self, site: str, rng: random.Random, by_ambulance: bool) -> _Patient:
        c = self.config
        self._seq["attendance"] += 1
        n = self._seq["attendance"]
        admit = rng.random() < (c.admit_by_ambulance if by_ambulance else c.admit_walk_in)
        wards = self._wards[site]
        ward = rng.choices(wards, weights=[w.admissions_per_day for w in wards])[0]
        sex: Sex = "male" if ward.sex_policy == "male" else "female"
        if ward.sex_policy not in ("male", "female") and rng.random() < 0.5:
            sex = "male"
        stay = rng.lognormvariate(math.log(c.stay_median_hours), c.stay_sigma)
        return _Patient(
            site=site,
            reference=f"ED{n:07d}",
            local_id=f"demo-ed-{n:07d}",
            sex=sex,
            admit=admit,
            specialty=ward.specialty,
            priority=rng.choices(PRIORITIES, weights=[1, 6, 3])[0],
            isolation=rng.random() < 0.05,
            dta_after=timedelta(hours=rng.uniform(*c.dta_hours)),
            stay=timedelta(hours=min(stay, 20.0)),
            disposition=rng.choices(LEAVING, weights=[91, 4, 5])[0],
        )

    def _new_crew(self, site: str, arrival: datetime, rng: random.Random) -> None:
        self._seq["incident"] += 1
        category = rng.choices(CATEGORIES, weights=CATEGORY_WEIGHTS)[0]
        alerted = category == "C1" or (category == "C2" and rng.random() < self.config.pre_alert_c2)
        lead = timedelta(minutes=rng.uniform(10, 20))
        crew = _Crew(
            site=site,
            incident=f"{arrival.astimezone(LONDON):%y%m%d}-{self._seq['incident']:06d}",
            vehicle=self._vehicle(rng),
            category=category,
            arrival_at=arrival,
            expected_at=arrival + timedelta(minutes=rng.uniform(-3, 3)) if alerted else None,
            z=rng.gauss(0, 1),
            clear_after=timedelta(minutes=rng.uniform(10, 20)),
            patient=self._new_patient(site, rng, True),
        )
        if crew.patient is not None and category == "C1":
            crew.patient.priority = "emergency"
        first: HandoverStep = "pre_alert" if alerted else "arrival"
        self._at(arrival - lead if alerted else arrival, partial(self._feed, crew, first))

    def _vehicle(self, rng: random.Random) -> str:
        """A call sign not already out on a job (a vehicle waits at one front door)."""
        sign = f"SE{rng.randrange(FLEET):03d}"
        while sign in self._busy and len(self._busy) < FLEET:
            sign = f"SE{rng.randrange(FLEET):03d}"
        self._busy.add(sign)
        return sign

    # --- the ambulance feed --------------------------------------------------------------

    def _feed(self, crew: _Crew, step: HandoverStep, at: datetime) -> None:
        """Send one step of a crew's job, and plan the next."""
        msg = HandoverMessage.model_validate(
            {
                "type": step,
                "service": SERVICE,
                "incident": crew.incident,
                "at": at,
                "site": crew.site if step in ("pre_alert", "arrival") else None,
                "vehicle": crew.vehicle,
                "category": crew.category,
                "expected_at": crew.expected_at if step == "pre_alert" else None,
            }
        )
        sent = self._try(partial(self.rt.frontdoor.handovers.apply, msg, FEED), step)
        if sent is None or step == "clear":
            self._busy.discard(crew.vehicle)  # back on the road
            return
        read: HandoverRead = sent[0]
        then = crew.arrival_at
        if step == "arrival":
            minutes = handover_minutes(self._site_occupancy(crew.site), crew.z)
            then = at + timedelta(minutes=minutes)
            if crew.patient is not None:
                self._attend(crew.patient, at, (read.id, then))
        elif step == "handover":
            then = at + crew.clear_after
        self._at(max(then, at), partial(self._feed, crew, NEXT[step]))

    # --- the emergency department --------------------------------------------------------

    def _attend(self, p: _Patient, at: datetime, crew: tuple[str, datetime] | None = None) -> None:
        """``p`` arrives (``crew``: the ambulance's handover id and expected handover time)."""
        handover_id, handover_at = crew or (None, at)
        req = AttendanceIn(
            site=p.site,
            reference=p.reference,
            arrived_at=at,
            patient=PatientIn(local_id=p.local_id, sex=p.sex),
            handover_id=handover_id,
        )
        read = self._try(partial(self.rt.frontdoor.ed.arrive, req, ED_SYSTEM), "attended")
        if read is None:
            return
        p.attendance_id = read.id
        # Nobody is decided on or sent home while still on the ambulance's trolley.
        floor = handover_at + timedelta(minutes=20)
        if p.admit:
            self._at(max(at + p.dta_after, floor + timedelta(minutes=10)), partial(self._dta, p))
        else:
            self._at(max(at + p.stay, floor), partial(self._depart, p.attendance_id, p.disposition))

    def _dta(self, p: _Patient, at: datetime) -> None:
        assert p.attendance_id is not None  # noqa: S101 -- planned after the arrival
        req = DecisionIn(at=at, specialty=p.specialty, priority=p.priority, isolation=p.isolation)
        ed = self.rt.frontdoor.ed
        self._try(partial(ed.decide_to_admit, p.attendance_id, req, ED_DOCTOR), "decided")

    def _depart(self, attendance_id: str, disposition: Disposition, at: datetime) -> None:
        req = DepartureIn(at=at, disposition=disposition)
        self._try(partial(self.rt.frontdoor.ed.depart, attendance_id, req, ED_SYSTEM), "departed")

    def _release_cancelled(self, now: datetime) -> None:
        """A decision to admit whose bed request was cancelled (by a bed manager, on the
        board) no longer waits for a bed: the ED sends the patient home."""
        for a in self.rt.frontdoor.ed.list(open_only=True, limit=1_000_000):
            if a.dta_at is not None and a.bed_request_status == "cancelled":
                self._depart(a.id, "discharged", now)

    # --- taking on what is already there --------------------------------------------------

    def _adopt_crews(self, now: datetime) -> None:
        """Plan the rest of each crew already on its way, waiting or handing over."""
        rng, hos = self._adopt_rng, self.rt.frontdoor.handovers
        recent = hos.list(open_only=False, since=now - timedelta(days=1), limit=1_000_000)
        rows = {h.id: h for h in [*hos.list(open_only=True, limit=1_000_000), *recent]}
        for h in sorted(rows.values(), key=lambda h: h.incident):
            if h.status not in ("expected", "waiting", "handed_over") or h.site not in self.beds:
                continue
            crew = _Crew(
                site=h.site,
                incident=h.incident,
                vehicle=h.vehicle or self._vehicle(rng),
                category=h.category or "C3",
                arrival_at=max(h.expected_at or now, _soon(rng, now, 1, 10)),
                expected_at=h.expected_at,
                z=rng.gauss(0, 1),
                clear_after=timedelta(minutes=rng.uniform(10, 20)),
                patient=None,  # a patient already in the ED is taken on with the ED's
            )
            self._busy.add(crew.vehicle)
            if h.status == "expected":
                crew.patient = self._new_patient(h.site, rng, True)
                at, step = crew.arrival_at, partial(self._feed, crew, "arrival")
            elif h.status == "waiting" and h.arrived_at is not None:
                wait = handover_minutes(self._site_occupancy(h.site), crew.z)
                at = max(h.arrived_at + timedelta(minutes=wait), _soon(rng, now, 1, 15))
                step = partial(self._feed, crew, "handover")
            else:
                at = max((h.handover_at or now) + crew.clear_after, _soon(rng, now, 1, 5))
                step = partial(self._feed, crew, "clear")
            self._at(at, step)
            self.counts["adopted crews"] += 1

    def _adopt_patients(self, now: datetime) -> None:
        """Plan the rest of each ED patient not yet decided on (those with a decision to
        admit wait for the bed manager)."""
        rng = self._adopt_rng
        for a in self.rt.frontdoor.ed.list(open_only=True, limit=1_000_000):
            if a.dta_at is not None or a.site not in self.beds:
                continue
            p = self._new_patient(a.site, rng, a.handover_id is not None)
            p.attendance_id = a.id
            if p.admit:
                at = max(a.arrived_at + p.dta_after, _soon(rng, now, 5, 30))
                self._at(at, partial(self._dta, p))
            else:
                at = max(a.arrived_at + p.stay, _soon(rng, now, 5, 90))
                self._at(at, partial(self._depart, a.id, p.disposition))
            self.counts["adopted patients"] += 1

    # --- helpers -------------------------------------------------------------------------

    def _site_occupancy(self, site: str) -> float | None:
        """G&A occupancy of ``site`` as the board has it (read at most once a tick)."""
        if self._occupancy is None:
            live = self.rt.occupancy.live()
            self._occupancy = {e["code"]: e["general_acute"]["occupancy"] for e in live["sites"]}
        return self._occupancy.get(site)

    def _try(self, action: Callable[[], T], counter: str) -> T | None:
        try:
            result = action()
        except WardWatchError as exc:  # logged and counted; the demo runs on
            log.warning("front door: %s refused: %s", counter, exc.message)
            self.counts["refused"] += 1
            return None
        self.counts[counter] += 1
        return result


def _last_number(values: Iterable[str]) -> int:
    """The highest number ending any of ``values`` (0 if none)."""
    return max((int(m.group(1)) for v in values if (m := _NUMBER.search(v))), default=0)


def _soon(rng: random.Random, now: datetime, lo: float, hi: float) -> datetime:
    """A few minutes from now (``lo``-``hi``): for steps already overdue when taken on."""
    return now + timedelta(minutes=rng.uniform(lo, hi))
