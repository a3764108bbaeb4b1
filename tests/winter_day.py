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
