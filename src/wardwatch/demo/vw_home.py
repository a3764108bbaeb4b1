"""The demo's virtual-ward patients at home: their kit, their checks and what the kit sends.

A patient has a home-monitoring tablet (with a Bluetooth oximeter and thermometer and, for
some, a separate connected BP cuff) for spot checks 2-4 times a day, or a continuous wearable
(chest patch and ring oximeter, a sample every 1-5 minutes) plus the tablet for blood pressure
twice a day. Faults happen as they do at home: a spot check forgotten, a battery left
uncharged, a hub offline so its data arrives late, a motion artefact (pulse 900) or a
temperature keyed in Fahrenheit as Celsius, which the service refuses and keeps while the rest
of the batch is stored.

Readings are written as a gateway would send them (the compact JSON of
:mod:`wardwatch.virtualward.compact`); the ward (:mod:`wardwatch.demo.wearables`) sends them.
Every draw comes from the ward's random stream, in the ward's order of patients.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from wardwatch.demo.vw_physiology import LONDON, UNWELL, Course, Profile, vitals
from wardwatch.virtualward.rules import interval

if TYPE_CHECKING:
    from wardwatch.demo.wearables import Config

CONTINUOUS_TABLET_EVERY = timedelta(hours=12)  # blood pressure and ACVPU for wearers
STATUS_EVERY = timedelta(hours=1)  # a wearable's battery report

CODES = {  # how each parameter is sent: wearables use LOINC, the tablet app plain names
    "pulse": ("8867-4", "/min"),
    "respiration_rate": ("9279-1", "/min"),
    "spo2": ("59408-5", "%"),
    "temperature": ("8310-5", "Cel"),
    "systolic_bp": ("8480-6", "mm[Hg]"),
    "diastolic_bp": ("8462-4", "mm[Hg]"),
    "oxygen_flow": ("3151-8", "L/min"),
}


def reading(name: str, value: Any, at: datetime, device: str, loinc: bool) -> dict[str, Any]:
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
class Patient:
    """One enrolled patient as the simulation sees them: profile, kit, what is due when."""

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

    @property
    def course_kind(self) -> str:
        """How a deterioration shows in the vitals (a well patient's noise is the same)."""
        return self.course.kind if self.course else "infection"

    def severity(self, t: datetime) -> float:
        return self.course.severity(t) if self.course else 0.0

    def check_every(self) -> timedelta:
        return CONTINUOUS_TABLET_EVERY if self.profile.continuous else interval(self.plan)


@dataclass(slots=True)
class Outbox:
    """One tick's messages: the wearable gateway's batch, the app's checks, status reports."""

    gateway: list[dict[str, Any]] = field(default_factory=list)
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def between(rng: random.Random, lo: float, hi: float) -> timedelta:
    """A human delay: between ``lo`` and ``hi`` minutes."""
    return timedelta(minutes=rng.uniform(lo, hi))


class Home:
    """What the patients and their kit do at home each tick: batteries drain and are charged,
    checks are taken (or forgotten), wearables upload. ``faults``: forgotten checks and hubs
    going offline (off for the quiet history before the live demo)."""

    def __init__(self, rng: random.Random, config: Config, counts: Counter[str]) -> None:
        self.rng = rng  # the ward's stream: the ward decides the order of draws
        self.config = config
        self.counts = counts  # the ward's counts

    def batteries(self, p: Patient, now: datetime) -> None:
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

    def checks(self, p: Patient, now: datetime, out: Outbox, *, faults: bool) -> None:
        if not p.felt_unwell and p.severity(now) >= UNWELL:
            # Patients are told to check whenever they feel worse: most do, within the hour.
            p.felt_unwell = True
            if self.rng.random() < 0.8:
                p.next_check = min(p.next_check, now + between(self.rng, 0, 60))
        if p.tablet is None or now < p.next_check:
            return
        at = p.next_check
        p.next_check = at + p.check_every() + between(self.rng, -15, 15)
        if p.severity(at) >= UNWELL:  # still feeling unwell: checks again within hours
            p.next_check = min(p.next_check, at + between(self.rng, 60, 180))
        forgot = faults and self.rng.random() < self.config.missed_check_share
        if p.battery.get(p.tablet, 0) <= 0 or forgot:
            self.counts["missed_checks"] += 1  # forgotten: the missed-reading alert follows
            return
        v = vitals(p.profile, p.severity(at), at, p.course_kind, self.rng)
        names = ["systolic_bp", "diastolic_bp", "consciousness"]
        if not p.profile.continuous:
            names = ["respiration_rate", "spo2", "pulse", "temperature", "consciousness"]
            if not p.cuff:
                names += ["systolic_bp", "diastolic_bp"]
        readings = [reading(n, v[n], at, p.tablet, loinc=False) for n in names]
        if p.profile.o2_flow:
            readings.append(reading("oxygen_flow", p.profile.o2_flow, at, p.tablet, False))
        for r in readings:
            if r["code"] == "temperature" and p.profile.fahrenheit:
                r["value"], r["unit"] = round(r["value"] * 9 / 5 + 32, 1), "[degF]"
            elif r["code"] == "temperature" and self.rng.random() < self.config.spike_share:
                r["value"] = round(r["value"] * 9 / 5 + 32, 1)  # keyed in °F, sent as Cel
        if p.cuff:
            cuff_at = at + timedelta(minutes=2)
            for n in ("systolic_bp", "diastolic_bp"):
                readings.append(reading(n, v[n], min(cuff_at, now), p.cuff, loinc=True))
        battery = round(p.battery[p.tablet])
        out.messages.append(("api", {"device": p.tablet, "battery": battery, "readings": readings}))
        self.counts["checks"] += 1

    def uploads(self, p: Patient, now: datetime, out: Outbox, *, faults: bool) -> None:
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
                v = vitals(p.profile, p.severity(t), t, p.course_kind, self.rng)
                for n in ("pulse", "respiration_rate", "spo2", "temperature"):
                    samples.append(reading(n, v[n], t, p.wearable, loinc=True))
            p.last_sample = t
            t += step
        p.next_upload = now + timedelta(minutes=p.profile.upload_min)
        if samples and self.rng.random() < self.config.spike_share:
            samples[0]["value"] = 900  # a motion artefact: pulse 900/min (the first is a pulse)
        if samples and faults and self.rng.random() < self.config.late_upload_share:
            p.offline_until = now + between(self.rng, 35, 90)  # the hub loses its connection
            self.counts["late_uploads"] += 1
        out.gateway.extend(samples)
        self.counts["uploads"] += bool(samples)
