"""Ambulance handovers: the feed, repeats and refusals, delay alerts, figures, the API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import auth
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.frontdoor.models import Handover
from wardwatch.frontdoor.schemas import HandoverMessage
from wardwatch.runtime import Runtime


def msg(kind: str, incident: str, at: datetime, **extra: Any) -> HandoverMessage:
    return HandoverMessage.model_validate(
        {"type": kind, "service": "SECAMB", "incident": incident, "at": at, **extra}
    )


def arrive(rt: Runtime, incident: str, at: datetime, site: str = "BUSY", **extra: Any) -> None:
    read, repeat = rt.frontdoor.handovers.apply(
        msg("arrival", incident, at, site=site, **extra), SYSTEM
    )
    assert read.status == "waiting" and not repeat


def hand_over(rt: Runtime, incident: str, at: datetime) -> None:
    rt.frontdoor.handovers.apply(msg("handover", incident, at), SYSTEM)


def events(rt: Runtime, kind: str) -> list[EventRecord]:
    with rt.db.read() as s:
        return list(s.scalars(select(EventRecord).where(EventRecord.type == kind)))


def snapshot(rt: Runtime) -> tuple[int, int]:
    with rt.db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Handover)) or 0,
            s.scalar(select(func.count()).select_from(EventRecord)) or 0,
        )


def test_the_whole_journey_pre_alert_to_clear(fd: Runtime, clock: ManualClock) -> None:
    t = clock.now() - timedelta(minutes=40)
    h = fd.frontdoor.handovers
    steps = [
        msg(
            "pre_alert",
            "J1",
            t,
            site="BUSY",
            expected_at=t + timedelta(minutes=12),
            vehicle="KM101",
            category="C2",
        ),
        msg("arrival", "J1", t + timedelta(minutes=10), site="BUSY"),
        msg("handover", "J1", t + timedelta(minutes=32)),
        msg("clear", "J1", t + timedelta(minutes=40)),
    ]
    results = h.feed(steps, SYSTEM)
    assert [r.status for r in results] == ["expected", "waiting", "handed_over", "clear"]
    read = h.get(results[0].handover_id or "")
    assert (read.vehicle, read.category, read.minutes, read.minutes_lost) == (
        "KM101",
        "C2",
        22.0,
        7.0,
    )
    assert read.breaches == [15]
    assert [e.type for e in events(fd, "handover.arrived")] == ["handover.arrived"]
    assert events(fd, "handover.handed_over")[0].data["minutes"] == 22.0


def test_a_repeated_message_is_acknowledged_and_changes_nothing(
    fd: Runtime, clock: ManualClock
) -> None:
    t = clock.now() - timedelta(minutes=5)
    arrive(fd, "R1", t)
    before = snapshot(fd)
    read, repeat = fd.frontdoor.handovers.apply(msg("arrival", "R1", t, site="BUSY"), SYSTEM)
    assert repeat and read.status == "waiting"
    assert snapshot(fd) == before


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        # a crew "arriving" twice, at another time
        ([("arrival", 0, "BUSY"), ("arrival", 3, "BUSY")], "already arrived"),
        # handover before arrival (by time) and with no arrival at all
        ([("arrival", 10, "BUSY"), ("handover", 5, None)], "before the arrival"),
        ([("pre_alert", 0, "BUSY"), ("handover", 5, None)], "has not arrived"),
        ([("handover", 5, None)], "send arrival first"),
        # clear before handover
        ([("arrival", 0, "BUSY"), ("clear", 5, None)], "not been handed over"),
        # arrival at a site nobody knows
        ([("arrival", 0, "NOWHERE")], "no site with code 'NOWHERE'"),
    ],
)
def test_contradictions_are_refused_and_change_nothing(
    fd: Runtime, clock: ManualClock, steps: list[tuple[str, int, str | None]], error: str
) -> None:
    base = clock.now() - timedelta(minutes=30)
    *good, bad = [
        msg(kind, "X1", base + timedelta(minutes=m), **({"site": site} if site else {}))
        for kind, m, site in steps
    ]
    assert all(r.ok for r in fd.frontdoor.handovers.feed(good, SYSTEM))
    before = snapshot(fd)
    (result,) = fd.frontdoor.handovers.feed([bad], SYSTEM)
    assert not result.ok and error in (result.error or "")
    assert snapshot(fd) == before


def test_one_vehicle_cannot_wait_at_two_front_doors(fd: Runtime, clock: ManualClock) -> None:
    t = clock.now() - timedelta(minutes=20)
    arrive(fd, "V1", t, vehicle="KM7")
    results = fd.frontdoor.handovers.feed(
        [msg("arrival", "V2", t + timedelta(minutes=5), site="NEAR", vehicle="KM7")], SYSTEM
    )
    assert not results[0].ok and "still waiting to hand over incident V1" in (
        results[0].error or ""
    )


def test_a_bad_message_in_a_batch_loses_nothing_else(fd: Runtime, clock: ManualClock) -> None:
    t = clock.now() - timedelta(minutes=20)
    results = fd.frontdoor.handovers.feed(
        [
            msg("arrival", "B1", t, site="BUSY"),
            msg("handover", "B1", t - timedelta(minutes=1)),  # before its arrival
            msg("arrival", "B2", t, site="NEAR"),
        ],
        SYSTEM,
    )
    assert [r.ok for r in results] == [True, False, True]
    assert {r.incident for r in fd.frontdoor.handovers.list()} == {"B1", "B2"}


def test_crews_past_30_and_45_minutes_alert_the_control_centre_once(
    fd: Runtime, clock: ManualClock
) -> None:
    arrive(fd, "D1", clock.now(), vehicle="KM9")
    arrive(fd, "D2", clock.now() + timedelta(minutes=1), site="NEAR")
    clock.advance(timedelta(minutes=29, seconds=59))
    assert fd.frontdoor.check_delays() == []
    clock.advance(timedelta(seconds=1))
    assert [(h.incident, h.alerted_minutes) for h in fd.frontdoor.check_delays()] == [("D1", 30)]
    assert fd.frontdoor.check_delays() == []  # not twice
    hand_over(fd, "D2", clock.now())  # D2 handed over at 29 min: never alerted
    clock.advance(timedelta(minutes=15))
    (late,) = fd.frontdoor.check_delays()
    # the alert comes on reaching 45:00; a breach is a wait *over* 45 minutes
    assert (late.incident, late.alerted_minutes, late.breaches) == ("D1", 45, [15, 30])
    delayed = events(fd, "handover.delayed")
    assert [(e.data["minutes"], e.data["release"]) for e in delayed] == [(30, False), (45, True)]
    feed = fd.notify.feed(["role:control-centre"])
    assert [n["event"] for n in feed].count("handover.delayed") == 2


def test_a_crew_already_past_45_gets_one_alert_not_two(fd: Runtime, clock: ManualClock) -> None:
    arrive(fd, "L1", clock.now() - timedelta(minutes=50))
    (alert,) = fd.frontdoor.check_delays()
    assert alert.alerted_minutes == 45
    assert [e.data["minutes"] for e in events(fd, "handover.delayed")] == [45]


def test_figures_per_site_and_system_by_hand(fd: Runtime, clock: ManualClock) -> None:
    t = clock.now() - timedelta(hours=3)
    # (incident, site, arrival offset min, handover minutes)
    plan = [
        ("F1", "BUSY", 0, 10),
        ("F2", "BUSY", 5, 20),
        ("F3", "BUSY", 10, 70),
        ("F4", "NEAR", 0, 15),
        ("F5", "NEAR", 30, 46),
    ]
    for incident, site, offset, minutes in plan:
        arrive(fd, incident, t + timedelta(minutes=offset), site=site)
        hand_over(fd, incident, t + timedelta(minutes=offset + minutes))
    arrive(fd, "F6", clock.now() - timedelta(minutes=35), site="BUSY")  # still waiting: 35 min
    summary = fd.frontdoor.handover_summary()
    busy = next(x for x in summary["sites"] if x["site"] == "BUSY")
    near = next(x for x in summary["sites"] if x["site"] == "NEAR")
    # BUSY waits 10, 20, 70, 35: lost 0 + 5 + 55 + 20 = 80 min; over 15: 3; 30: 2; 45: 1; 60: 1
    assert (busy["arrivals"], busy["waiting"], busy["over_15"], busy["over_30"]) == (4, 1, 3, 2)
    assert (busy["over_45"], busy["over_60"], busy["within_15"]) == (1, 1, 1)
    assert busy["hours_lost"] == round(80 / 60, 2)
    assert busy["mean_minutes"] == round((10 + 20 + 70 + 35) / 4, 1)
    # NEAR waits 15 (not a breach: over 15 means more than 15) and 46: lost 31 min
    assert (near["over_15"], near["over_45"], near["hours_lost"]) == (1, 1, round(31 / 60, 2))
    assert summary["system"]["hours_lost"] == round(111 / 60, 2)
    assert summary["system"]["arrivals"] == 6


# --- the API ---------------------------------------------------------------------------------


def iso(at: datetime) -> str:
    return at.isoformat()


def test_the_feed_over_http_for_an_ambulance_service(
    fd: Runtime, api: TestClient, clock: ManualClock
) -> None:
    crew = auth(fd, "ambulance")
    t = clock.now() - timedelta(minutes=10)
    r = api.post(
        "/api/handovers/feed",
        headers=crew,
        json={
            "messages": [
                {
                    "type": "pre_alert",
                    "service": "SECAMB",
                    "incident": "H1",
                    "site": "BUSY",
                    "at": iso(t),
                    "expected_at": iso(t + timedelta(minutes=15)),
                    "vehicle": "KM1",
                },
                {
                    "type": "arrival",
                    "service": "SECAMB",
                    "incident": "H2",
                    "site": "BUSY",
                    "at": iso(t),
                    "vehicle": "KM2",
                },
                {
                    "type": "arrival",
                    "service": "SECAMB",
                    "incident": "H3",
                    "site": "BUSY",
                    "at": "2026-01-05T09:25:00",
                },
            ]
        },
    )
    # a time without a zone fails validation of the whole request: nothing is applied
    assert r.status_code == 422 and "time zone" in r.text
    assert api.get("/api/handovers", headers=crew).json() == []
    r = api.post(
        "/api/handovers/feed",
        headers=crew,
        json={
            "messages": [
                {
                    "type": "pre_alert",
                    "service": "SECAMB",
                    "incident": "H1",
                    "site": "BUSY",
                    "at": iso(t),
                    "expected_at": iso(t + timedelta(minutes=15)),
                    "vehicle": "KM1",
                },
                {
                    "type": "arrival",
                    "service": "SECAMB",
                    "incident": "H2",
                    "site": "BUSY",
                    "at": iso(t),
                    "vehicle": "KM2",
                },
                {
                    "type": "arrival",
                    "service": "SECAMB",
                    "incident": "H3",
                    "site": "BUSY",
                    "at": iso(clock.now() + timedelta(minutes=5)),
                },
            ]
        },
    )
    assert r.status_code == 200
    assert [(x["ok"], x["status"]) for x in r.json()] == [
        (True, "expected"),
        (True, "waiting"),
        (False, None),
    ]
    assert "in the future" in r.json()[2]["error"]
    board = api.get("/api/handovers?site=BUSY", headers=crew).json()
    assert [(x["incident"], x["status"]) for x in board] == [("H2", "waiting"), ("H1", "expected")]
    assert board[0]["release_due_at"] is not None


def test_single_messages_answer_with_the_right_status(
    fd: Runtime, api: TestClient, clock: ManualClock
) -> None:
    crew = auth(fd, "ambulance")
    body = {
        "type": "arrival",
        "service": "NWAS",
        "incident": "S1",
        "site": "NEAR",
        "at": iso(clock.now()),
    }
    assert api.post("/api/handovers", headers=crew, json=body).status_code == 201
    assert api.post("/api/handovers", headers=crew, json=body).status_code == 200  # repeat
    later = {**body, "at": iso(clock.now() + timedelta(seconds=30))}
    r = api.post("/api/handovers", headers=crew, json=later)
    assert r.status_code == 409 and "already arrived" in r.json()["message"]
    r = api.post("/api/handovers", headers=crew, json={**body, "type": "arrival", "site": None})
    assert r.status_code == 422 and "needs the site" in r.text
    r = api.post("/api/handovers", headers=crew, json={**body, "type": "teleport"})
    assert r.status_code == 422


def test_who_may_send_and_read(fd: Runtime, api: TestClient, clock: ManualClock) -> None:
    body = {
        "type": "arrival",
        "service": "NWAS",
        "incident": "P1",
        "site": "NEAR",
        "at": iso(clock.now()),
    }
    assert api.post("/api/handovers", headers=auth(fd, "read-only"), json=body).status_code == 403
    assert api.post("/api/handovers", headers=auth(fd, "porter"), json=body).status_code == 403
    assert (
        api.post("/api/handovers", headers=auth(fd, "control-centre"), json=body).status_code == 201
    )
    ambulance = auth(fd, "ambulance")
    assert api.get("/api/handovers/summary", headers=ambulance).status_code == 200
    assert api.get("/api/ed/attendances", headers=ambulance).status_code == 403
