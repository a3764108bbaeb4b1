"""The demo's virtual ward: patients at home with monitoring kit, and the team watching them.

Every virtual-ward place of the demo is an *enrolment* (never a plain admission), so the
caseload, NEWS2 scores, alerts and escalations are live from the first minute. Each patient
gets one or two registered devices linked at enrolment: a home-monitoring tablet (with a
Bluetooth oximeter, thermometer and, for some, a separate connected BP cuff) for spot checks
2-4 times a day, or a continuous wearable (chest patch and ring oximeter, a sample every 1-5
minutes) plus the tablet for blood pressure twice a day. The plans are realistic ones; the
demo's sped-up clock (x60 by default) is what compresses them, so a check or an upload
arrives every few real seconds across the caseload and a deterioration plays out in minutes.

Physiology is synthetic but shaped like the real thing: a baseline per patient (COPD patients
with a low SpO2 on scale 2, set by a consultant with the reason; some on home oxygen), noise,
a circadian swing, and a few patients who deteriorate over hours (rising respiration and
pulse, falling SpO2 and blood pressure, fever, sometimes new confusion) so NEWS2 climbs
through 5-6 to 7+; most recover after a call or a home visit, the sickest are stepped up to
hospital (a bed request the demo's bed manager allocates). Faults happen as they do at home:
a spot check forgotten, a battery left uncharged, a hub offline so its data arrives late, a
motion artefact (pulse 900) or a temperature keyed in Fahrenheit as Celsius, which are
refused and kept while the rest of the batch is stored.

Readings travel as a gateway would send them: compact JSON through
``rt.virtualward.receive_compact`` ("api" for the tablet app's checks, "mqtt" for the
wearables' batched uploads and status messages). The team works the alerts like the people of
:mod:`wardwatch.demo.coordination`: with human delays, slower at night, sometimes late enough
for the escalation to the senior clinician and the control centre to fire.

Everything is drawn from the demo's seed, in a fixed order (patients sorted by NHS number),
so the same seed on the same clock gives the same ward.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Literal
from zoneinfo import ZoneInfo

from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import WardWatchError
from wardwatch.demo.generator import WardPlan
from wardwatch.runtime import Runtime
from wardwatch.virtualward.rules import interval
from wardwatch.virtualward.schemas import (
    Action,
    AlertActionIn,
    AlertRead,
    DeviceIn,
    EndRequest,
    EnrolmentRead,
    EnrolRequest,
    PlanIn,
    ScaleUpdate,
    StepUpRequest,
)

log = logging.getLogger(__name__)
LONDON = ZoneInfo("Europe/London")
GATEWAY = Actor(name="demo-wearable-gateway", role="device")
PATIENT_APP = Actor(name="demo-patient-app", role="device")
CONSULTANT = Actor(name="vw-consultant", role="clinician")
NURSES = [Actor(name=f"vw-nurse-{n}", role="clinician") for n in range(1, 6)]
NIGHT_NURSE = Actor(name="vw-night-nurse", role="clinician")

#: Below the national ~75%: a few dozen monitored patients keep the demo cheap on SQLite.
OCCUPANCY = 0.65
LOS_DAYS = {"frailty": 7.0, "respiratory medicine": 6.0, "heart failure": 12.0}
CONTINUOUS_SHARE = {"frailty": 0.2, "respiratory medicine": 0.35, "heart failure": 0.25}
#: Where a patient stepped up from each virtual ward is looked after in hospital.
HOSPITAL_SPECIALTY = {
    "frailty": "elderly care",
    "respiratory medicine": "respiratory medicine",
    "heart failure": "cardiology",
}
COURSE_KIND = {"respiratory medicine": "exacerbation", "heart failure": "fluid"}
#: Change at full severity (s = 1), per course kind: (rr, pulse, spo2, sbp, temp).
EFFECTS = {
    "infection": (12.0, 38.0, -7.0, -22.0, 2.3),
    "exacerbation": (13.0, 30.0, -6.5, -8.0, 1.0),
    "fluid": (12.0, 32.0, -8.0, -18.0, 0.2),
}
UNWELL = 0.3  # severity at which a patient notices
TREATMENT_TAKES = timedelta(hours=3)  # antibiotics or a rescue pack start to work
CONTINUOUS_TABLET_EVERY = timedelta(hours=12)  # blood pressure and ACVPU for wearers
STATUS_EVERY = timedelta(hours=1)  # a wearable's battery report
SCALE_2_REASON = "COPD with documented hypercapnic respiratory failure: target SpO2 88-92%"
#: Alert kinds about the patient's condition, and those about the kit (rules.py groups them;
#: the alert's read model carries the kind only).
URGENT_KINDS = frozenset({"news2_high", "news2_medium", "single_3", "threshold", "trend"})
ROUTINE_KINDS = frozenset({"missed_reading", "stale_data", "battery_low"})


@dataclass(frozen=True, slots=True)
class Config:
    """Shares and rates of the simulated ward (the defaults are the demo's)."""

    occupancy: float = OCCUPANCY
    recover_share: float = 0.12  # patients who deteriorate to NEWS2 ~5-7, then recover
    severe_share: float = 0.08  # patients who deteriorate to 7+ and need hospital
    start_onset_hours: tuple[float, float] = (0.25, 18.0)  # for the patients found at start
    step_down_share: float = 0.35  # new enrolments that come from a hospital bed
    missed_check_share: float = 0.04
    spike_share: float = 0.01  # uploads or checks carrying an impossible value
    late_upload_share: float = 0.004  # wearable uploads after which the hub goes offline
    late_ack_share: float = 0.12  # alerts acknowledged only after their response target


# --- physiology (pure) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """A patient's baseline and kit, drawn from their identifier alone (so a restarted demo
    recognises the patients it left)."""

    specialty: str
    sex: str
    rr: float
    pulse: float
    spo2: float
    sbp: float
    dbp: float
    temp: float
    copd: bool
    o2_flow: float | None
    continuous: bool
    times_per_day: int
    interval_min: int
    upload_min: int
    cuff: bool
    forgetful: bool
    fahrenheit: bool
    confusion: float
    drain_per_hour: float

    def plan(self) -> PlanIn:
        params = ["respiration_rate", "spo2", "systolic_bp", "pulse", "consciousness"]
        params += ["temperature"] + (["oxygen_flow"] if self.o2_flow else [])
        oxygen = "oxygen" if self.o2_flow else "air"
        if self.continuous:
            return PlanIn(
                parameters=params,
                mode="continuous",
                interval_minutes=self.interval_min,
                grace_minutes=self.upload_min + 10,
                oxygen=oxygen,
            )
        return PlanIn(
            parameters=params,
            mode="spot",
            times_per_day=self.times_per_day,
            grace_minutes=90,
            oxygen=oxygen,
        )


def los_days(plan: WardPlan) -> float:
    """Mean length of a stay on a virtual ward, by its specialty."""
    return LOS_DAYS.get(plan.specialty, plan.los_days)


def profile_for(key: str, specialty: str, seed: int) -> Profile:
    r = random.Random(f"wardwatch-demo:{seed}:{key}")
    copd = specialty == "respiratory medicine" and r.random() < 0.5
    heart = specialty == "heart failure"
    continuous = r.random() < CONTINUOUS_SHARE.get(specialty, 0.25)
    return Profile(
        specialty=specialty,
        sex=r.choice(["male", "female"]),
        rr=r.uniform(16, 19) if copd else r.uniform(14, 18),
        pulse=r.uniform(68, 94) if heart else r.uniform(62, 86),
        spo2=r.uniform(88.5, 91) if copd else r.uniform(95, 98),
        sbp=r.uniform(102, 128) if heart else r.uniform(115, 148),
        dbp=r.uniform(62, 84),
        temp=r.uniform(36.3, 36.9),
        copd=copd,
        o2_flow=r.choice([1.0, 1.5, 2.0]) if copd and r.random() < 0.35 else None,
        continuous=continuous,
        times_per_day=r.choices([2, 3, 4], weights=[3, 4, 3])[0],
        interval_min=r.choice([1, 2, 3, 5]),
        upload_min=r.choice([5, 10]),
        cuff=not continuous and r.random() < 0.4,
        forgetful=r.random() < 0.1,
        fahrenheit=r.random() < 0.15,
        confusion=0.7 if specialty == "frailty" else 0.25,
        drain_per_hour=r.uniform(2.0, 3.0),
    )


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


@dataclass(slots=True)
class Course:
    """How ill a patient is over time: 0 well, 1 very unwell (NEWS2 well past 7)."""

    kind: str
    onset: datetime
    rise: timedelta
    peak: float
    recovers: bool
    plateau: timedelta
    recover: timedelta
    treated_at: datetime | None = None

    def severity(self, t: datetime) -> float:
        if t <= self.onset:
            return 0.0
        rising = self.peak * _smooth((t - self.onset) / self.rise)
        if not self.recovers:
            return rising
        start = self.onset + self.rise + self.plateau
        if self.treated_at is not None:
            start = min(start, self.treated_at + TREATMENT_TAKES)
        if t <= start:
            return rising
        level = self.peak * _smooth((start - self.onset) / self.rise)
        return level * (1 - _smooth((t - start) / self.recover))


def vitals(p: Profile, s: float, t: datetime, kind: str, rng: random.Random) -> dict[str, Any]:
    """One set of observations at time ``t`` for severity ``s``, with noise and a daily swing."""
    hour = t.astimezone(LONDON)
    c = math.cos(2 * math.pi * (hour.hour + hour.minute / 60 - 16) / 24)  # peak at 16:00
    d_rr, d_pulse, d_spo2, d_sbp, d_temp = EFFECTS[kind]
    if p.copd:
        d_spo2 *= 0.9
    return {
        "respiration_rate": round(p.rr + 0.5 * c + d_rr * s + rng.gauss(0, 1.0)),
        "pulse": round(p.pulse + 5 * c + d_pulse * s + rng.gauss(0, 3)),
        "spo2": min(100, round(p.spo2 + d_spo2 * s + rng.gauss(0, 0.7))),
        "systolic_bp": round(p.sbp + 6 * c + d_sbp * s + rng.gauss(0, 5)),
        "diastolic_bp": round(p.dbp + 4 * c + d_sbp * s / 2 + rng.gauss(0, 4)),
        "temperature": round(p.temp + 0.3 * c + d_temp * s + rng.gauss(0, 0.12), 1),
        "consciousness": "C" if s > 0.75 and rng.random() < p.confusion else "A",
    }


def nhs_number(rng: random.Random) -> str:
    """A valid NHS number in the 999 range, which the NHS never issues (safe test data)."""
    while True:
        digits = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            return digits + str(0 if check == 11 else check)


# --- the patients --------------------------------------------------------------------------

CODES = {  # how each parameter is sent: wearables use LOINC, the tablet app plain names
    "pulse": ("8867-4", "/min"),
    "respiration_rate": ("9279-1", "/min"),
    "spo2": ("59408-5", "%"),
    "temperature": ("8310-5", "Cel"),
    "systolic_bp": ("8480-6", "mm[Hg]"),
    "diastolic_bp": ("8462-4", "mm[Hg]"),
    "oxygen_flow": ("3151-8", "L/min"),
}


def _reading(name: str, value: Any, at: datetime, device: str, loinc: bool) -> dict[str, Any]:
    code, unit = CODES.get(name, (name, ""))
    out: dict[str, Any] = {
        "id": f"{int(at.timestamp())}-{name}",
        "code": code if loinc else name,
        "value": value,
        "at": at.isoformat(),
        "device": device,
    }
    if unit:
        out["unit"] = unit
    return out


@dataclass(slots=True)
class _Patient:
    key: str  # NHS number (or hospital number for a step-down without one)
    enrolment_id: str
    ward: str
    profile: Profile
    base_plan: dict[str, Any]
    plan: dict[str, Any]
    home_site: str | None
    end_at: datetime
    tablet: str | None
    cuff: str | None
    wearable: str | None
    next_check: datetime
    last_sample: datetime
    next_upload: datetime
    next_status: datetime
    battery: dict[str, float]
    battery_at: datetime
    course: Course | None = None
    offline_until: datetime | None = None
    charge_at: datetime | None = None
    charged_on: date | None = None
    stepped_up: bool = False
    felt_unwell: bool = False

    @property
    def devices(self) -> list[str]:
        return [d for d in (self.tablet, self.cuff, self.wearable) if d]

    def severity(self, t: datetime) -> float:
        return self.course.severity(t) if self.course else 0.0

    def check_every(self) -> timedelta:
        return CONTINUOUS_TABLET_EVERY if self.profile.continuous else interval(self.plan)


@dataclass(slots=True)
class _Outbox:
    """One tick's messages: the wearable gateway's batch, the app's checks, status reports."""

    gateway: list[dict[str, Any]] = field(default_factory=list)
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class SimulatedVirtualWard:
    """The demo's virtual wards: enrolments, devices, readings, and a team on the alerts."""

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
        self.rng = random.Random(f"wardwatch-demo-vw:{seed}")
        self.seed = seed
        self.wards = {p.code: p for p in plans if p.site_kind == "virtual_ward"}
        self.hospital = [p for p in plans if p.site_kind == "acute" and not p.assessment]
        self.acute_sites = sorted({p.site for p in plans if p.site_kind == "acute" and p.site})
        self.patients: dict[str, _Patient] = {}
        self.team = VirtualWardTeam(self, random.Random(f"wardwatch-demo-vw-team:{seed}"))
        devices = rt.virtualward.devices()
        self._serials = len(devices)
        self._pool: dict[str, list[str]] = {}
        for d in devices:
            if d.linked_to is None:
                self._pool.setdefault(d.kind, []).append(d.serial)
        self._last_tick: datetime | None = None
        self._faults = True
        self._cohort_assigned = False
        self.counts: Counter[str] = Counter()  # what happened, for tests and curiosity

    # --- enrolment -----------------------------------------------------------------------

    def enrol(self, plan: WardPlan, *, course: bool = True, from_hospital: bool = False) -> bool:
        """One patient onto ``plan``'s virtual ward now: kit registered, linked, and watched.

        ``from_hospital``: a step down of a patient in a hospital bed of the matching
        specialty (the service moves their stay), else a patient admitted from home.
        """
        now = self.clock.now()
        if sum(p.ward == plan.code for p in self.patients.values()) >= plan.beds:
            return False  # full: in real life the referral waits
        patient = self._from_hospital(plan) if from_hospital else None
        stepped_down = patient is not None
        if patient is None:
            taken = {p.key for p in self.patients.values()}
            key = nhs_number(self.rng)
            while key in taken:
                key = nhs_number(self.rng)
            patient = PatientIn(nhs_number=key, sex=profile_for(key, plan.specialty, self.seed).sex)
        profile = profile_for(
            patient.nhs_number or patient.local_id or "", plan.specialty, self.seed
        )
        kit = {"app": "TAB"}
        if profile.continuous:
            kit["wearable"] = "PATCH"
        elif profile.cuff:
            kit["bp_cuff"] = "BPC"
        serials = {kind: self._device(kind, prefix) for kind, prefix in kit.items()}
        req = EnrolRequest(
            patient=patient, ward=plan.code, plan=profile.plan(), devices=list(serials.values())
        )
        try:
            e = self.rt.virtualward.enrol(req, self.rng.choice(NURSES))
        except WardWatchError as exc:  # the ward filled up, the patient moved: as in life
            log.debug("virtual ward: enrolment skipped: %s", exc.message)
            for kind, serial in serials.items():
                self._pool.setdefault(kind, []).insert(0, serial)
            return False
        if profile.copd:  # the consultant's decision, recorded with its reason
            self.team.set_scale(e.id)
        p = self._patient(e, profile, now, first_check=now + self._minutes(5, 40))
        p.battery = dict.fromkeys(p.devices, 100.0)
        if course:
            p.course = self._course(p, now, (12.0, 24 * self._los(plan) * 0.7))
        self.counts["stepped_down" if stepped_down else "enrolled"] += 1
        return True

    def fill(self) -> int:
        """Enrol patients up to the target occupancy now (a ward that starts empty)."""
        n = 0
        for plan in self.wards.values():
            for _ in range(round(plan.beds * self.config.occupancy)):
                n += self.enrol(plan, course=False)
        return n

    def _from_hospital(self, plan: WardPlan) -> PatientIn | None:
        """A patient in a hospital bed of the matching specialty, ready for a step down."""
        wanted = HOSPITAL_SPECIALTY.get(plan.specialty, "general medicine")
        wards = [w.code for w in self.hospital if w.specialty == wanted]
        if not wards:
            return None
        ward = self.rng.choice(sorted(wards))
        beds = self.rt.capacity.list_beds(BedFilter(ward=ward, state=BedState.OCCUPIED))
        beds = [b for b in beds if b.stay_id]
        if not beds:
            return None
        stay = self.rt.capacity.get_stay(self.rng.choice(beds).stay_id or "")
        if not (stay.nhs_number or stay.local_id):
            return None
        sex = stay.sex if stay.sex in ("male", "female") else None
        return PatientIn(nhs_number=stay.nhs_number, local_id=stay.local_id, sex=sex)

    def _device(self, kind: str, prefix: str) -> str:
        """A free device of ``kind`` from the store cupboard, or a new one registered."""
        pool = self._pool.get(kind)
        if pool:
            return pool.pop(0)
        self._serials += 1
        serial = f"WW-{prefix}-{self._serials:05d}"
        models = {
            "app": "home monitoring tablet (Bluetooth oximeter and thermometer)",
            "wearable": "chest patch with ring oximeter",
            "bp_cuff": "connected blood pressure monitor",
        }
        self.rt.virtualward.register_device(
            DeviceIn(serial=serial, kind=kind, model=models[kind]), CONSULTANT
        )
        return serial

    def _patient(
        self, e: EnrolmentRead, profile: Profile, now: datetime, first_check: datetime
    ) -> _Patient:
        kinds = {d.kind: d for d in e.devices}
        home = self.rng.choice(self.acute_sites) if self.acute_sites else None
        los = self._los(self.wards[e.ward]) if e.ward in self.wards else 10.0
        p = _Patient(
            key=e.nhs_number or e.local_id or e.patient_id,
            enrolment_id=e.id,
            ward=e.ward,
            profile=profile,
            base_plan=profile.plan().model_dump(),
            plan=dict(e.plan),
            home_site=home,
            end_at=_daytime(now + timedelta(days=max(1.0, self.rng.expovariate(1 / los)))),
            tablet=kinds["app"].serial if "app" in kinds else None,
            cuff=kinds["bp_cuff"].serial if "bp_cuff" in kinds else None,
            wearable=kinds["wearable"].serial if "wearable" in kinds else None,
            next_check=first_check,
            last_sample=now,
            next_upload=now + timedelta(minutes=profile.upload_min),
            next_status=now + self._minutes(0, 60),
            battery={d.serial: float(d.battery_pct or 100) for d in e.devices},
            battery_at=now,
        )
        self.patients[e.id] = p
        return p

    def _los(self, plan: WardPlan) -> float:
        return los_days(plan)

    def _course(self, p: _Patient, now: datetime, hours: tuple[float, float]) -> Course | None:
        roll = self.rng.random()
        c = self.config
        if roll < c.severe_share:
            return self._make_course(p, now, hours, severe=True)
        if roll < c.severe_share + c.recover_share:
            return self._make_course(p, now, hours, severe=False)
        return None

    def _make_course(
        self, p: _Patient, now: datetime, hours: tuple[float, float], *, severe: bool
    ) -> Course:
        r = self.rng
        lo, hi = hours
        return Course(
            kind=COURSE_KIND.get(p.profile.specialty, "infection"),
            onset=now + timedelta(hours=r.uniform(lo, max(lo, hi))),
            rise=timedelta(hours=r.uniform(2.0, 8.0)),
            peak=r.uniform(0.95, 1.15) if severe else r.uniform(0.5, 0.62),
            recovers=not severe,
            plateau=timedelta(hours=r.uniform(4.0, 12.0)),
            recover=timedelta(hours=r.uniform(12.0, 36.0)),
        )

    # --- the loop ------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """One step of the live demo: census, readings due, and the team's work."""
        self._step(now, live=True)

    def warm_up(self, start: datetime, end: datetime) -> None:
        """Begin a quiet history from ``start`` to ``end`` (prepare): each patient's first
        check falls in it and wearables start sampling, so no one is overdue when the live
        demo begins. Drive it with :meth:`quiet_tick`."""
        for p in sorted(self.patients.values(), key=_by_key):
            p.next_check = start + self.rng.uniform(0, 0.9) * min(p.check_every(), end - start)
            p.last_sample = start
            p.next_upload = start + self._minutes(0, p.profile.upload_min)
            p.battery_at = start
            for serial in p.devices:
                p.battery[serial] = self.rng.uniform(35, 100)

    def quiet_tick(self, now: datetime) -> None:
        """Readings and the team, but no admissions, discharges or deteriorations."""
        self._step(now, live=False)

    def _step(self, now: datetime, *, live: bool) -> None:
        self._faults = live  # a quiet history: no forgotten checks, no hub offline
        caseload = self._sync(now, live=live)
        if live:
            self._census(now, caseload)
        out = _Outbox()
        for p in sorted(self.patients.values(), key=_by_key):
            self._batteries(p, now)
            self._checks(p, now, out)
            self._uploads(p, now, out)
        self._send(out)
        self.team.step(now, caseload)
        self._last_tick = now

    def _sync(self, now: datetime, *, live: bool) -> list[EnrolmentRead]:
        """The caseload as the service has it: patients who left are let go, patients this
        process did not enrol (a kept demo, the prepared start) are taken on."""
        caseload = self.rt.virtualward.caseload()
        open_ids = {e.id for e in caseload}
        for p in [p for eid, p in self.patients.items() if eid not in open_ids]:
            self.release(p)
            self.counts["left"] += 1
        found = [e for e in caseload if e.id not in self.patients and e.ward in self.wards]
        for e in sorted(found, key=lambda e: e.nhs_number or e.local_id or e.patient_id):
            self._adopt(e, now)
        if live and not self._cohort_assigned:
            self._cohort_assigned = True
            self._assign_courses(now)
        return sorted(caseload, key=lambda e: self._key(e))

    def _key(self, e: EnrolmentRead) -> str:
        p = self.patients.get(e.id)
        return p.key if p else (e.nhs_number or e.local_id or e.patient_id)

    def _adopt(self, e: EnrolmentRead, now: datetime) -> None:
        key = e.nhs_number or e.local_id or e.patient_id
        profile = profile_for(key, self.wards[e.ward].specialty, self.seed)
        p = self._patient(e, profile, now, first_check=now)
        tablet = next((d for d in e.devices if d.kind == "app"), None)
        if tablet and tablet.last_seen_at:  # within the plan, not all at the same time
            due = tablet.last_seen_at + self.rng.uniform(0.25, 1.0) * p.check_every()
            p.next_check = max(now, due)
        else:
            p.next_check = now + self.rng.uniform(0, 1) * p.check_every()
        wearable = next((d for d in e.devices if d.kind == "wearable"), None)
        if wearable and wearable.last_seen_at:
            # What a patch stores while no one listens is capped at one upload's worth.
            upload = timedelta(minutes=profile.upload_min)
            p.last_sample = min(now, max(wearable.last_seen_at, now - upload))
            p.next_upload = max(now, p.last_sample + upload)
        self.counts["adopted"] += 1

    def _assign_courses(self, now: datetime) -> None:
        """Of the patients found at start, a fixed share deteriorate within the first hours
        (so the demo shows alerts early, and a small ward still has its quota)."""
        cohort = sorted((p for p in self.patients.values() if p.course is None), key=_by_key)
        self.rng.shuffle(cohort)
        c = self.config
        severe = max(1, round(len(cohort) * c.severe_share)) if len(cohort) >= 4 else 0
        recover = max(1, round(len(cohort) * c.recover_share)) if len(cohort) >= 4 else 0
        for n, p in enumerate(cohort[: severe + recover]):
            p.course = self._make_course(p, now, c.start_onset_hours, severe=n < severe)

    def release(self, p: _Patient) -> None:
        """The patient left: their kit goes back to the cupboard, charged."""
        self.patients.pop(p.enrolment_id, None)
        for kind, serial in (("app", p.tablet), ("bp_cuff", p.cuff), ("wearable", p.wearable)):
            if serial:
                self._pool.setdefault(kind, []).append(serial)

    # --- admissions and discharges -------------------------------------------------------

    def _census(self, now: datetime, caseload: list[EnrolmentRead]) -> None:
        days = (now - self._last_tick).total_seconds() / 86400 if self._last_tick else 0.0
        for plan in sorted(self.wards.values(), key=lambda w: w.code):
            rate = plan.beds * self.config.occupancy / self._los(plan)
            for _ in range(_poisson(self.rng, rate * days)):
                step_down = self.rng.random() < self.config.step_down_share
                if not self.enrol(plan, from_hospital=step_down) and step_down:
                    self.enrol(plan)
        busy = {e.id for e in caseload for a in e.open_alerts if a.kind in URGENT_KINDS}
        for p in sorted(self.patients.values(), key=_by_key):
            if now < p.end_at or p.stepped_up:
                continue
            if p.enrolment_id in busy or p.severity(now) > 0.15:
                p.end_at = _daytime(now + timedelta(hours=12))  # not today: still unwell
                continue
            self.team.discharge(p)

    # --- readings ------------------------------------------------------------------------

    def _batteries(self, p: _Patient, now: datetime) -> None:
        hours = (now - p.battery_at).total_seconds() / 3600
        p.battery_at = now
        if p.wearable:
            p.battery[p.wearable] = max(
                0.0, p.battery[p.wearable] - p.profile.drain_per_hour * hours
            )
        if p.tablet:
            p.battery[p.tablet] = max(0.0, p.battery[p.tablet] - 0.6 * hours)
        local = now.astimezone(LONDON)
        if p.charge_at is not None and now >= p.charge_at:
            p.charge_at = None
            p.battery = dict.fromkeys(p.battery, 100.0)
        elif local.hour >= 21 and p.charged_on != local.date():
            p.charged_on = local.date()  # the evening routine: charge what runs low
            if not p.profile.forgetful or self.rng.random() < 0.25:
                for serial, pct in p.battery.items():
                    if pct < 70:
                        p.battery[serial] = 100.0

    def _checks(self, p: _Patient, now: datetime, out: _Outbox) -> None:
        if not p.felt_unwell and p.severity(now) >= UNWELL:
            # Patients are told to check whenever they feel worse: most do, within the hour.
            p.felt_unwell = True
            if self.rng.random() < 0.8:
                p.next_check = min(p.next_check, now + self._minutes(0, 60))
        if p.tablet is None or now < p.next_check:
            return
        at = p.next_check
        p.next_check = at + p.check_every() + self._minutes(-15, 15)
        if p.severity(at) >= UNWELL:  # still feeling unwell: checks again within hours
            p.next_check = min(p.next_check, at + self._minutes(60, 180))
        forgot = self._faults and self.rng.random() < self.config.missed_check_share
        if p.battery.get(p.tablet, 0) <= 0 or forgot:
            self.counts["missed_checks"] += 1  # forgotten: the missed-reading alert follows
            return
        v = vitals(p.profile, p.severity(at), at, self._kind(p), self.rng)
        names = ["systolic_bp", "diastolic_bp", "consciousness"]
        if not p.profile.continuous:
            names = ["respiration_rate", "spo2", "pulse", "temperature", "consciousness"]
            if not p.cuff:
                names += ["systolic_bp", "diastolic_bp"]
        readings = [_reading(n, v[n], at, p.tablet, loinc=False) for n in names]
        if p.profile.o2_flow:
            readings.append(_reading("oxygen_flow", p.profile.o2_flow, at, p.tablet, False))
        for r in readings:
            if r["code"] == "temperature" and p.profile.fahrenheit:
                r["value"], r["unit"] = round(r["value"] * 9 / 5 + 32, 1), "[degF]"
            elif r["code"] == "temperature" and self.rng.random() < self.config.spike_share:
                r["value"] = round(r["value"] * 9 / 5 + 32, 1)  # keyed in °F, sent as Cel
        if p.cuff:
            cuff_at = at + timedelta(minutes=2)
            for n in ("systolic_bp", "diastolic_bp"):
                readings.append(_reading(n, v[n], min(cuff_at, now), p.cuff, loinc=True))
        battery = round(p.battery[p.tablet])
        out.messages.append(("api", {"device": p.tablet, "battery": battery, "readings": readings}))
        self.counts["checks"] += 1

    def _uploads(self, p: _Patient, now: datetime, out: _Outbox) -> None:
        if p.wearable is None:
            return
        offline = p.offline_until is not None and now < p.offline_until
        if now >= p.next_status and p.battery[p.wearable] > 0 and not offline:
            p.next_status = now + STATUS_EVERY
            pct = round(p.battery[p.wearable])
            status = {"device": p.wearable, "battery": pct, "at": now.isoformat(), "readings": []}
            out.messages.append(("mqtt", status))
        if now < p.next_upload or offline:
            return
        p.offline_until = None
        step = timedelta(minutes=p.profile.interval_min)
        samples: list[dict[str, Any]] = []
        t = p.last_sample + step
        while t <= now:
            if p.battery[p.wearable] > 0:  # a flat patch records nothing
                v = vitals(p.profile, p.severity(t), t, self._kind(p), self.rng)
                for n in ("pulse", "respiration_rate", "spo2", "temperature"):
                    samples.append(_reading(n, v[n], t, p.wearable, loinc=True))
            p.last_sample = t
            t += step
        p.next_upload = now + timedelta(minutes=p.profile.upload_min)
        if samples and self.rng.random() < self.config.spike_share:
            samples[0]["value"] = 900  # a motion artefact: pulse 900/min (the first is a pulse)
        if samples and self._faults and self.rng.random() < self.config.late_upload_share:
            p.offline_until = now + self._minutes(35, 90)  # the hub loses its connection
            self.counts["late_uploads"] += 1
        out.gateway.extend(samples)
        self.counts["uploads"] += bool(samples)

    def _send(self, out: _Outbox) -> None:
        batches = list(out.messages)
        if out.gateway:
            batches.insert(0, ("mqtt", {"readings": out.gateway}))
        for source, body in batches:
            actor = GATEWAY if source == "mqtt" else PATIENT_APP
            result = self.rt.virtualward.receive_compact(json.dumps(body), source, actor)
            if "error" in result:
                log.warning("virtual ward: gateway message refused: %s", result["error"])
                continue
            self.counts["sent"] += int(result["received"])
            self.counts["stored"] += int(result["stored"])
            self.counts["refused"] += len(result["refused"]) + len(result["refused_in_message"])
            self.counts["alerts"] += len(result["alerts"])

    # --- helpers -------------------------------------------------------------------------

    def _kind(self, p: _Patient) -> str:
        return p.course.kind if p.course else "infection"

    def _minutes(self, lo: float, hi: float) -> timedelta:
        return _between(self.rng, lo, hi)

    def patient(self, enrolment_id: str) -> _Patient | None:
        return self.patients.get(enrolment_id)


# --- the virtual-ward team -----------------------------------------------------------------


@dataclass(slots=True)
class _Triage:
    severity: str
    ack_at: datetime
    who: Actor
    action: Action | None = None
    reason: str | None = None
    act_at: datetime | None = None
    acted_at: datetime | None = None
    followed_up: bool = False


ACK_MEAN_MIN = {"emergency": 4.0, "urgent": 10.0, "routine": 30.0}
NIGHT_SLOWER = 2.5  # one nurse covers the whole caseload overnight
ACTION_MIN = {
    "called_patient": (5, 15),
    "home_visit": (60, 150),
    "escalated_hospital": (5, 15),
    "escalated_999": (3, 8),
    "no_action": (2, 5),
}


class VirtualWardTeam:
    """The virtual-ward nurses and consultant: acknowledge, act, resolve, step up."""

    def __init__(self, ward: SimulatedVirtualWard, rng: random.Random) -> None:
        self.ward = ward
        self.rt = ward.rt
        self.rng = rng
        self._plans: dict[str, _Triage] = {}
        self.counts: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()  # by what was done

    def step(self, now: datetime, caseload: list[EnrolmentRead]) -> None:
        seen: set[str] = set()
        for e in caseload:
            p = self.ward.patient(e.id)
            for a in sorted(e.open_alerts, key=lambda a: (a.opened_at, a.kind, a.summary)):
                seen.add(a.id)
                self._try(partial(self._work, now, e, p, a))
        for gone in [k for k in self._plans if k not in seen]:
            del self._plans[gone]

    def _work(self, now: datetime, e: EnrolmentRead, p: _Patient | None, a: AlertRead) -> None:
        t = self._plans.get(a.id)
        if t is None or (a.status == "new" and t.severity != a.severity):
            t = self._plans[a.id] = self._plan(now, a)
        if a.status == "new" and now >= t.ack_at:
            self.rt.virtualward.acknowledge(a.id, t.who, version=a.version)
            self.counts["acknowledged"] += 1
            self.counts["late"] += now > a.due_at
            self._choose(now, e, p, a, t)
        elif a.status == "acknowledged":
            if t.act_at is None:
                self._choose(now, e, p, a, t)
            if t.act_at is not None and now >= t.act_at:
                self._act(now, e, p, a, t)
        elif a.status == "actioned":
            self._review(now, e, p, a, t)

    def _plan(self, now: datetime, a: AlertRead) -> _Triage:
        night = not 7 <= now.astimezone(LONDON).hour < 22
        if self.rng.random() < self.ward.config.late_ack_share:
            ack = max(now, a.due_at) + timedelta(minutes=self.rng.uniform(5, 30))
        else:
            mean = ACK_MEAN_MIN.get(a.severity, 20.0) * (NIGHT_SLOWER if night else 1.0)
            ack = now + timedelta(minutes=1 + self.rng.expovariate(1 / mean))
        who = NIGHT_NURSE if night else self.rng.choice(NURSES)
        return _Triage(severity=a.severity, ack_at=ack, who=who)

    def _choose(
        self, now: datetime, e: EnrolmentRead, p: _Patient | None, a: AlertRead, t: _Triage
    ) -> None:
        """What the nurse decides to do, and how long it takes."""
        latest = e.latest
        points = latest.partial_total if latest else 0
        confused = bool(latest and latest.values.get("consciousness") not in (None, "A"))
        if a.kind in ROUTINE_KINDS:
            t.action, t.reason = "called_patient", _ROUTINE_REASON.get(a.kind, "patient called")
        elif a.severity == "emergency" or points >= 7:
            if confused or points >= 10:
                t.action, t.reason = "escalated_999", f"999 ambulance called: NEWS2 {points}"
            else:
                t.action, t.reason = "escalated_hospital", f"NEWS2 {points}: hospital assessment"
        else:
            roll = self.rng.random()
            if roll < 0.1:
                t.action = "no_action"
                t.reason = "reviewed with the patient: known baseline, repeat observations due"
            elif roll < 0.55:
                t.action, t.reason = "called_patient", "advice given, rescue medication started"
            else:
                t.action, t.reason = "home_visit", "seen at home: examined, treatment started"
        lo, hi = ACTION_MIN[t.action]
        t.act_at = now + timedelta(minutes=self.rng.uniform(lo, hi))

    def _act(
        self, now: datetime, e: EnrolmentRead, p: _Patient | None, a: AlertRead, t: _Triage
    ) -> None:
        action: Action = t.action or "called_patient"
        reason = t.reason
        if action in ("escalated_hospital", "escalated_999"):
            reason = self._step_up(e, p, a, action, reason or "")
        req = AlertActionIn(action=action, reason=reason)
        self.rt.virtualward.act(a.id, req, t.who, version=a.version)
        t.acted_at = now
        self.counts["actioned"] += 1
        self.actions[action] += 1
        if p is not None:
            self._effect(now, e, p, a, action)

    def _step_up(
        self, e: EnrolmentRead, p: _Patient | None, a: AlertRead, action: str, reason: str
    ) -> str:
        if p is None or p.stepped_up or p.home_site is None:
            return f"{reason}; already waiting for a hospital bed" if p and p.stepped_up else reason
        specialty = HOSPITAL_SPECIALTY.get(p.profile.specialty, "general medicine")
        priority: Literal["emergency", "urgent"] = (
            "emergency" if action == "escalated_999" or a.severity == "emergency" else "urgent"
        )
        req = self.rt.virtualward.step_up(
            e.id,
            StepUpRequest(site=p.home_site, specialty=specialty, priority=priority, reason=reason),
            CONSULTANT,
        )
        p.stepped_up = True
        self.counts["stepped_up"] += 1
        return f"{reason}; bed requested at {p.home_site} ({req.priority})"

    def _effect(
        self, now: datetime, e: EnrolmentRead, p: _Patient, a: AlertRead, action: str
    ) -> None:
        """What the call or visit changes at home."""
        if a.kind in ("missed_reading", "stale_data"):
            p.next_check = min(p.next_check, now + _between(self.rng, 5, 20))
            p.offline_until = None
            if any(pct <= 0 for pct in p.battery.values()):
                p.charge_at = now + _between(self.rng, 10, 40)
        elif a.kind == "battery_low":
            p.charge_at = now + _between(self.rng, 20, 60)
        elif action in ("called_patient", "home_visit") and a.kind in URGENT_KINDS:
            if p.course is not None and p.course.treated_at is None:
                p.course.treated_at = now
            if not p.profile.continuous and p.plan.get("times_per_day", 0) < 24:
                self._set_plan(e, p, {**p.base_plan, "times_per_day": 24, "grace_minutes": 30})
                p.next_check = min(p.next_check, now + timedelta(hours=1))

    def _review(
        self, now: datetime, e: EnrolmentRead, p: _Patient | None, a: AlertRead, t: _Triage
    ) -> None:
        """An actioned alert: closed when the patient is better, followed up when not."""
        acted = t.acted_at or now
        t.acted_at = acted
        if a.kind == "stale_data" and "arrived" in a.summary:  # late data, not a silent device
            note = "hub reconnected; data flowing again"
            self.rt.virtualward.resolve(a.id, note, t.who, version=a.version)
            self.counts["resolved"] += 1
            return
        if a.kind not in URGENT_KINDS or a.action in ("escalated_hospital", "escalated_999"):
            return
        points = e.latest.partial_total if e.latest else 0
        if now >= acted + timedelta(hours=1) and points <= 4:
            note = f"NEWS2 back to {points}: usual monitoring"
            self.rt.virtualward.resolve(a.id, note, t.who, version=a.version)
            self.counts["resolved"] += 1
            if p is not None and p.plan != p.base_plan:
                self._set_plan(e, p, p.base_plan)
        elif now >= acted + timedelta(hours=3) and not t.followed_up:
            t.followed_up = True  # still unwell after the call: go and see them
            req = AlertActionIn(action="home_visit", reason="no better after advice: visited")
            self.rt.virtualward.act(a.id, req, t.who, version=a.version)
            self.actions["home_visit"] += 1
            if p is not None and p.course is not None and p.course.treated_at is None:
                p.course.treated_at = now

    def set_scale(self, enrolment_id: str) -> None:
        update = ScaleUpdate(scale=2, reason=SCALE_2_REASON)
        self._try(partial(self.rt.virtualward.set_scale, enrolment_id, update, CONSULTANT))

    def _set_plan(self, e: EnrolmentRead, p: _Patient, plan: dict[str, Any]) -> None:
        got = self.rt.virtualward.set_plan(e.id, PlanIn.model_validate(plan), CONSULTANT)
        p.plan = dict(got.plan)
        self.counts["plan_changed"] += 1

    def discharge(self, p: _Patient) -> None:
        req = EndRequest(reason="recovered", destination="usual residence")
        if self._try(lambda: self.rt.virtualward.end(p.enrolment_id, req, self.rng.choice(NURSES))):
            self.ward.release(p)
            self.ward.counts["ended"] += 1

    @staticmethod
    def _try(action: Callable[[], object]) -> bool:
        try:
            action()
        except WardWatchError as exc:  # someone else got there first: as a person would
            log.debug("virtual-ward team: skipped: %s", exc.message)
            return False
        return True


_ROUTINE_REASON = {
    "missed_reading": "patient called: reminded to do the check",
    "stale_data": "patient called: device and hub checked",
    "battery_low": "patient asked to charge the device",
}


def _by_key(p: _Patient) -> str:
    return p.key


def _between(rng: random.Random, lo: float, hi: float) -> timedelta:
    """A human delay: between ``lo`` and ``hi`` minutes."""
    return timedelta(minutes=rng.uniform(lo, hi))


def _daytime(t: datetime) -> datetime:
    """Discharges happen in the day: move ``t`` into 10:00-17:00 local time."""
    local = t.astimezone(LONDON)
    if local.hour < 10:
        local = local.replace(hour=10, minute=local.minute)
    elif local.hour >= 17:
        local = (local + timedelta(days=1)).replace(hour=10, minute=local.minute)
    return local.astimezone(t.tzinfo)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means of one step."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
