"""The synthetic physiology of the demo's virtual-ward patients (pure: no database, no clock).

Physiology is synthetic but shaped like the real thing: a baseline per patient (COPD patients
with a low SpO2 on scale 2, set by a consultant with the reason; some on home oxygen), noise,
a circadian swing, and a few patients who deteriorate over hours (rising respiration and
pulse, falling SpO2 and blood pressure, fever, sometimes new confusion) so NEWS2 climbs
through 5-6 to 7+; most recover after a call or a home visit, the sickest are stepped up to
hospital.

Every draw takes the random stream it is given, so the ward (:mod:`wardwatch.demo.wearables`)
decides the order of draws, and the same seed gives the same patients and the same day.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from wardwatch.virtualward.schemas import PlanIn

LONDON = ZoneInfo("Europe/London")

CONTINUOUS_SHARE = {"frailty": 0.2, "respiratory medicine": 0.35, "heart failure": 0.25}
COURSE_KIND = {"respiratory medicine": "exacerbation", "heart failure": "fluid"}
#: Change at full severity (s = 1), per course kind: (rr, pulse, spo2, sbp, temp).
EFFECTS = {
    "infection": (12.0, 38.0, -7.0, -22.0, 2.3),
    "exacerbation": (13.0, 30.0, -6.5, -8.0, 1.0),
    "fluid": (12.0, 32.0, -8.0, -18.0, 0.2),
}
UNWELL = 0.3  # severity at which a patient notices
TREATMENT_TAKES = timedelta(hours=3)  # antibiotics or a rescue pack start to work


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
                # The wearable measures every few minutes, the tablet takes BP and asks about
                # confusion twice a day: the team lets those complete a set for 12 hours.
                set_window_minutes=720,
            )
        return PlanIn(
            parameters=params,
            mode="spot",
            times_per_day=self.times_per_day,
            grace_minutes=90,
            oxygen=oxygen,
        )


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


def new_course(
    r: random.Random, specialty: str, now: datetime, hours: tuple[float, float], *, severe: bool
) -> Course:
    """A deterioration starting between ``hours`` from ``now``: to NEWS2 7+ without recovery
    (``severe``: they need hospital), else to about 5-7 and back (draws in a fixed order)."""
    lo, hi = hours
    return Course(
        kind=COURSE_KIND.get(specialty, "infection"),
        onset=now + timedelta(hours=r.uniform(lo, max(lo, hi))),
        rise=timedelta(hours=r.uniform(2.0, 8.0)),
        peak=r.uniform(0.95, 1.15) if severe else r.uniform(0.5, 0.62),
        recovers=not severe,
        plateau=timedelta(hours=r.uniform(4.0, 12.0)),
        recover=timedelta(hours=r.uniform(12.0, 36.0)),
    )


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
