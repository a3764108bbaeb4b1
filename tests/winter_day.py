"""A winter day at a busy front door, as events on a timeline, with its figures by hand.

Tuesday 6 January 2026 (GMT, so local time = UTC). Site BUSY: quick handovers in the
morning, then ambulances bunch in the afternoon while beds are short and waits grow; NEAR
has two. ED attendances at BUSY include two that started the day before. Every expected
figure below was worked out by hand from these tables (the comments show the working), not
by the code under test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from wardwatch.capacity.schemas import PatientIn
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.frontdoor.schemas import AttendanceIn, DecisionIn, DepartureIn, HandoverMessage
from wardwatch.runtime import Runtime

DAY = date(2026, 1, 6)


def at(day: int, hhmm: str) -> datetime:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 1, day, hours, minutes, tzinfo=UTC)


# (site, arrival, minutes to handover). The first belongs to 5 January (arrival day).
HANDOVERS = [
    ("BUSY", at(5, "23:50"), 25),
    ("BUSY", at(6, "08:10"), 10),
    ("BUSY", at(6, "09:05"), 12),
    ("BUSY", at(6, "10:20"), 14),
    ("BUSY", at(6, "11:40"), 15),
    ("BUSY", at(6, "13:00"), 20),
    ("BUSY", at(6, "13:20"), 25),
    ("BUSY", at(6, "14:00"), 35),
    ("BUSY", at(6, "14:10"), 40),
    ("BUSY", at(6, "14:30"), 50),
    ("BUSY", at(6, "15:00"), 55),
    ("BUSY", at(6, "15:15"), 65),
    ("BUSY", at(6, "16:00"), 70),
    ("BUSY", at(6, "16:30"), 90),
    ("BUSY", at(6, "17:45"), 29),
    ("NEAR", at(6, "15:00"), 18),
    ("NEAR", at(6, "15:30"), 47),
]

# BUSY on the 6th: waits 10 12 14 15 | 20 25 35 40 50 55 65 70 90 29 (14 arrivals)
#   minutes lost (beyond 15): 5+10+20+25+35+40+50+55+75+14 = 329 → 5.48 h
#   over 15: 10; over 30: 35 40 50 55 65 70 90 = 7; over 45: 50 55 65 70 90 = 5;
#   over 60: 65 70 90 = 3; within 15: 4 (15 itself is not over 15)
#   mean: 530 / 14 = 37.857 → 37.9 min
# NEAR: waits 18, 47: lost 3 + 32 = 35 min → 0.58 h; over 15: 2, 30: 1, 45: 1, 60: 0
# System: 16 arrivals, lost 364 min → 6.07 h; over 15: 12, 30: 8, 45: 6, 60: 3
EXPECTED_HANDOVERS = {
    "BUSY": {
        "arrivals": 14,
        "within_15": 4,
        "over_15": 10,
        "over_30": 7,
        "over_45": 5,
        "over_60": 3,
        "hours_lost": 5.48,
        "mean_minutes": 37.9,
    },
    "NEAR": {
        "arrivals": 2,
        "within_15": 0,
        "over_15": 2,
        "over_30": 1,
        "over_45": 1,
        "over_60": 0,
        "hours_lost": 0.58,
        "mean_minutes": 32.5,
    },
    "system": {
        "arrivals": 16,
        "within_15": 4,
        "over_15": 12,
        "over_30": 8,
        "over_45": 6,
        "over_60": 3,
        "hours_lost": 6.07,
    },
}
# Control-centre alerts: a crew is reported on reaching 30 and 45 minutes while waiting.
#   reach 30: BUSY 35 40 50 55 65 70 90 + NEAR 47 = 8; reach 45: BUSY 50 55 65 70 90 +
#   NEAR 47 = 6 (the 29-minute crew and the 25-minute one of the 5th never reach 30)
EXPECTED_ALERTS = {30: 8, 45: 6}

# ED at BUSY: (reference, arrival, decision to admit or None, departure or None, disposition)
ATTENDANCES = [
    ("E14", at(5, "10:00"), at(5, "11:00"), at(6, "00:30"), "admitted"),
    ("E02", at(5, "20:00"), at(5, "22:00"), at(6, "11:00"), "admitted"),
    ("E01", at(6, "00:30"), None, at(6, "03:00"), "discharged"),
    ("E03", at(6, "08:00"), None, at(6, "11:30"), "discharged"),
    ("E04", at(6, "08:30"), None, at(6, "12:45"), "discharged"),
    ("E05", at(6, "09:00"), at(6, "11:00"), at(6, "12:00"), "admitted"),
    ("E06", at(6, "10:00"), None, at(6, "14:00"), "discharged"),
    ("E07", at(6, "11:00"), at(6, "13:00"), at(6, "23:30"), "admitted"),
    ("E08", at(6, "12:00"), None, at(6, "15:00"), "left"),
    ("E09", at(6, "13:00"), at(6, "15:00"), None, None),
    ("E10", at(6, "14:00"), None, at(6, "19:00"), "discharged"),
    ("E11", at(6, "15:00"), None, at(6, "16:30"), "discharged"),
    ("E12", at(6, "16:00"), None, at(6, "20:01"), "discharged"),
    ("E13", at(6, "18:00"), None, at(6, "21:00"), "transferred"),
]
# Left on the 6th: all but E09 = 13. Time in department (h): E14 14.5, E02 15, E01 2.5,
#   E03 3.5, E04 4.25, E05 3, E06 4.0, E07 12.5, E08 3, E10 5, E11 1.5, E12 4.02, E13 3.
#   Within 4 h (4.0 counts): E01 E03 E05 E06 E08 E11 E13 = 7 → 7/13 = 53.8 %
#   Over 12 h from arrival: E14 E02 E07 = 3
#   12-hour trolley waits (decision → departure): E14 13.5 h, E02 13 h (E07 10.5 h) = 2
#   Admitted: E14 E02 E05 E07 = 4
# At midnight ending the 6th: E09 still in the department, waiting 9 h since its decision.
EXPECTED_ED_DAY = {
    "departures": 13,
    "within_4h": 7,
    "four_hour_pct": 53.8,
    "over_12h_from_arrival": 3,
    "trolley_waits_12h": 2,
    "admitted": 4,
}
EXPECTED_ED_END = {
    "in_department": 1,
    "waiting_for_bed": 1,
    "dta_over_4h": 1,
    "dta_over_12h": 0,
    "longest_dta_wait_hours": 9.0,
}


@dataclass
class Replay:
    rt: Runtime
    clock: ManualClock
    alerts: dict[int, int]


def timeline(rt: Runtime) -> list[tuple[datetime, int, Callable[[], None]]]:
    """(time, order, action): at one minute, arrivals before departures."""
    steps: list[tuple[datetime, int, Callable[[], None]]] = []
    h = rt.frontdoor.handovers
    for i, (site, arrived, minutes) in enumerate(HANDOVERS):
        incident = f"W{i:02d}"

        def arrive(site: str = site, arrived: datetime = arrived, incident: str = incident) -> None:
            h.apply(_msg("arrival", incident, arrived, site=site, vehicle=f"KM{incident}"), SYSTEM)

        def hand(
            incident: str = incident, when: datetime = arrived + timedelta(minutes=minutes)
        ) -> None:
            h.apply(_msg("handover", incident, when), SYSTEM)

        steps += [(arrived, 0, arrive), (arrived + timedelta(minutes=minutes), 1, hand)]
    ids: dict[str, str] = {}
    for ref, arrived, dta, left, how in ATTENDANCES:

        def come(ref: str = ref, arrived: datetime = arrived) -> None:
            ids[ref] = rt.frontdoor.ed.arrive(
                AttendanceIn(
                    site="BUSY",
                    reference=ref,
                    arrived_at=arrived,
                    patient=PatientIn(local_id=f"P{ref}"),
                ),
                SYSTEM,
            ).id

        steps.append((arrived, 0, come))
        if dta is not None:

            def decide(ref: str = ref, dta: datetime = dta) -> None:
                rt.frontdoor.ed.decide_to_admit(
                    ids[ref], DecisionIn(at=dta, specialty="general medicine"), SYSTEM
                )

            steps.append((dta, 1, decide))
        if left is not None and how == "admitted":

            def to_ward(ref: str = ref) -> None:
                request = rt.frontdoor.ed.get(ids[ref]).bed_request_id or ""
                bed = rt.flow.suggestions(request)[0].bed_id
                rt.flow.allocate(request, bed, SYSTEM)
                rt.flow.arrive(request, SYSTEM)

            steps.append((left, 2, to_ward))
        elif left is not None:

            def leave(ref: str = ref, left: datetime = left, how: str = how or "") -> None:
                rt.frontdoor.ed.depart(ids[ref], DepartureIn(at=left, disposition=how), SYSTEM)  # type: ignore[arg-type]

            steps.append((left, 2, leave))
    return sorted(steps, key=lambda s: (s[0], s[1]))


def replay(
    rt: Runtime, clock: ManualClock, *, extra: Callable[[datetime], None] | None = None
) -> Replay:
    """Play the day minute by minute from 5 January 10:00 to 7 January 00:00, running the
    delay check (as the server's periodic loop does) after each minute's events."""
    steps = timeline(rt)
    alerts = {30: 0, 45: 0}
    t = at(5, "10:00")
    end = at(7, "00:00")
    i = 0
    while t <= end:
        clock.set(t)
        while i < len(steps) and steps[i][0] <= t:
            steps[i][2]()
            i += 1
        for crew in rt.frontdoor.check_delays():
            alerts[crew.alerted_minutes] += 1
        if extra is not None:
            extra(t)
        t += timedelta(minutes=1)
    assert i == len(steps), "every step ran"
    return Replay(rt, clock, alerts)


def _msg(kind: str, incident: str, when: datetime, **extra: str) -> HandoverMessage:
    return HandoverMessage.model_validate(
        {"type": kind, "service": "SECAMB", "incident": incident, "at": when, **extra}
    )


# --- beds and OPEL ---------------------------------------------------------------------------
# BUSY has 24 open G&A beds (AMU 10, MED 10, escalation ward 4, all open). At 10:00 on the
# 5th, 20 patients are in (AMU and MED full); two of them have been ready to leave since the
# 5th (no criteria to reside). The four ED admissions then take the escalation beds: 21 in
# from 00:30 on the 6th, 22 from 11:00, 23 from 12:00 and 24 (full) from 23:30.
PRELOAD = [f"BUSY-AMU-{i:02d}" for i in range(1, 11)] + [f"BUSY-MED-{i:02d}" for i in range(1, 11)]
READY = 2
OPEL_EVERY = timedelta(minutes=15)

# Moments worked through by hand with the default OPEL settings (weights: occupancy 25,
# mean handover 20, DTA > 4 h 15, in ED > 12 h 15, no criteria to reside 15, escalation beds
# 10; thresholds start bands 2/3/4 at occupancy 92/95/98 %, handover 15/30/45 min, DTA > 4 h
# 2/5/10, ED > 12 h 1/3/6, NCTR 10/15/20 %, escalation beds 1/5/10; band b is worth
# (b - 1)/3 * 100 points; a parameter with no value is left out; OPEL 2/3/4 from 20/45/70;
# a level drops only 5 points below its cut-off):
#
# 6 Jan 09:00: occupancy 21/24 = 87.5 % (band 1); crews in the last 4 h: 08:10, 10 min
#   (band 1); DTA > 4 h: E02 = 1 (band 1); in ED > 12 h: E02 (13 h) = 1 (band 2); NCTR
#   2/21 = 9.5 % (band 1); escalation beds 4 (band 2). Score (15 + 10) * 33.3 / 100 = 8.3.
# 6 Jan 18:00: occupancy 23/24 = 95.8 % (band 3); crews since 14:00: 35 40 50 55 65 70,
#   90 (16:30, handed over at 18:00) and 15 so far (17:45): 420/8 = 52.5 (band 4); DTA > 4 h: E07
#   (5 h) = 1 (band 1); ED > 12 h: 0; NCTR 2/23 = 8.7 % (band 1); escalation 4 (band 2).
#   Score (25 * 66.7 + 20 * 100 + 10 * 33.3) / 100 = 40.0 → OPEL 2.
# 6 Jan 20:00: as 18:00 but DTA > 4 h: E07 (7 h) and E09 (5 h) = 2 (band 2) and crews since
#   16:00: 70, 90, 29 → 63 (band 4). Score 40 + 15 * 33.3 / 100 = 45.0 → OPEL 3.
# 6 Jan 21:00: crews since 17:00: 29 (band 2). Score (1666.7 + 666.7 + 500 + 333.3) / 100
#   = 31.7: below 45 - 5, so down to OPEL 2.
HAND_WORKED = {
    at(6, "09:00"): (8.33, 1),
    at(6, "18:00"): (40.0, 2),
    at(6, "20:00"): (45.0, 3),
    at(6, "21:00"): (31.67, 2),
}


def preload(rt: Runtime) -> None:
    from sqlalchemy import select

    from wardwatch.capacity.models import Bed
    from wardwatch.capacity.schemas import AdmitRequest, StayUpdate

    with rt.db.read() as s:
        ids = dict(s.execute(select(Bed.code, Bed.id).where(Bed.code.in_(PRELOAD))).all())
    for i, code in enumerate(PRELOAD):
        stay = rt.capacity.admit(
            AdmitRequest(bed_id=ids[code], patient=PatientIn(local_id=f"IN{i:02d}")), SYSTEM
        )
        if i < READY:
            rt.capacity.update_stay(
                stay.id, StayUpdate(discharge_ready_date=date(2026, 1, 5)), SYSTEM
            )


WEIGHTS = {"occ": 25, "handover": 20, "dta4": 15, "ed12": 15, "nctr": 15, "esc": 10}
THRESHOLDS = {
    "occ": (92, 95, 98),
    "handover": (15, 30, 45),
    "dta4": (2, 5, 10),
    "ed12": (1, 3, 6),
    "nctr": (10, 15, 20),
    "esc": (1, 5, 10),
}
CUTOFFS = (20, 45, 70)
HYSTERESIS = 5


def values(site: str, t: datetime) -> dict[str, float | None]:
    """A site's OPEL parameters at ``t``, straight from the tables above. NEAR and FAR
    (20 G&A beds each) have no patients in beds, no ED attendances and no escalation
    ward; no criteria to reside has no value there (no occupied beds), so it is left out."""
    waits = [
        (min(t, arrived + timedelta(minutes=m)) - arrived).total_seconds() / 60
        for where, arrived, m in HANDOVERS
        if where == site and t - timedelta(hours=4) <= arrived <= t
    ]
    handover = sum(waits) / len(waits) if waits else None
    if site != "BUSY":
        return {"occ": 0.0, "handover": handover, "dta4": 0, "ed12": 0, "nctr": None, "esc": 0}
    occupied = len(PRELOAD) + sum(
        1 for _, _, _, left, how in ATTENDANCES if how == "admitted" and left and left <= t
    )
    inside = [
        (arrived, dta)
        for _, arrived, dta, left, _ in ATTENDANCES
        if arrived <= t and (left is None or left > t)
    ]
    return {
        "occ": 100 * occupied / 24,
        "handover": handover,
        "dta4": sum(
            1 for _, dta in inside if dta is not None and dta <= t and t - dta > timedelta(hours=4)
        ),
        "ed12": sum(1 for arrived, _ in inside if t - arrived > timedelta(hours=12)),
        "nctr": 100 * READY / occupied,
        "esc": 4,
    }


def model_score(values: dict[str, float | None]) -> float:
    used = {k: v for k, v in values.items() if v is not None}
    total = sum(WEIGHTS[k] for k in used)
    return (
        sum(WEIGHTS[k] * (sum(v >= x for x in THRESHOLDS[k]) * 100 / 3) for k, v in used.items())
        / total
    )


def model_level(score: float, previous: int | None) -> int:
    raw = 1 + sum(score >= c for c in CUTOFFS)
    if previous is None or raw >= previous:
        return raw
    return min(previous, 1 + sum(score + HYSTERESIS >= c for c in CUTOFFS))


#: Open G&A beds: the system's score is the sites' scores weighted by them.
GA_BEDS = {"BUSY": 24, "FAR": 20, "NEAR": 20}


def levels(start: datetime, end: datetime) -> dict[str, list[tuple[datetime, int, int | None]]]:
    """(time, level, previous) at every check from ``start`` where a scope's level moves."""
    out: dict[str, list[tuple[datetime, int, int | None]]] = {}
    previous: dict[str, int | None] = {}
    t = start
    while t <= end:
        scores = {site: model_score(values(site, t)) for site in GA_BEDS}
        scores["system"] = sum(GA_BEDS[x] * scores[x] for x in GA_BEDS) / sum(GA_BEDS.values())
        for scope, score in scores.items():
            level = model_level(score, previous.get(scope))
            if level != previous.get(scope):
                out.setdefault(scope, []).append((t, level, previous.get(scope)))
                previous[scope] = level
        t += OPEL_EVERY
    return out
