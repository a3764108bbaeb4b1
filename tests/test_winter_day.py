"""Replay a winter day at a busy site and check every figure against the hand calculation:
handover breaches and hours lost, the control centre's alerts, ED 4-hour and 12-hour
figures, who still waits for a bed, OPEL level changes, and the daily report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import auth
from tests.winter_day import (
    DAY,
    EXPECTED_ALERTS,
    EXPECTED_ED_DAY,
    EXPECTED_ED_END,
    EXPECTED_HANDOVERS,
    HAND_WORKED,
    OPEL_EVERY,
    Replay,
    at,
    levels,
    preload,
    replay,
)
from wardwatch.core.clock import ManualClock
from wardwatch.frontdoor.models import OpelLevel
from wardwatch.runtime import Runtime


def play(fd: Runtime, clock: ManualClock) -> tuple[Replay, dict[datetime, Any]]:
    """The day played through, with OPEL checked every 15 minutes as the server would, and
    BUSY's computed OPEL kept at the hand-worked moments."""
    seen: dict[datetime, Any] = {}
    start = at(5, "10:00")
    clock.set(start)
    preload(fd)

    def opel(t: datetime) -> None:
        if (t - start) % OPEL_EVERY:
            return
        fd.opel.check()
        if t in HAND_WORKED:
            seen[t] = next(x for x in fd.opel.compute().sites if x.code == "BUSY")

    return replay(fd, clock, extra=opel), seen


def test_a_winter_day_by_hand(fd: Runtime, clock: ManualClock, api: TestClient) -> None:
    """One replay (the expensive part), then every figure against the hand calculation."""
    day = play(fd, clock)
    handovers_alerts_and_ed(fd, day, api)
    opel_levels(fd, day)
    the_daily_report(fd, api)


def handovers_alerts_and_ed(
    fd: Runtime, day: tuple[Replay, dict[datetime, Any]], api: TestClient
) -> None:
    run, _ = day
    headers = auth(fd, "control-centre")
    handovers = api.get(f"/api/handovers/summary?day={DAY}", headers=headers).json()
    by_site = {x["site"]: x for x in handovers["sites"]} | {"system": handovers["system"]}
    for scope, expected in EXPECTED_HANDOVERS.items():
        got = {key: by_site[scope][key] for key in expected}
        assert got == expected, scope
    assert by_site["FAR"]["arrivals"] == 0
    assert run.alerts == EXPECTED_ALERTS
    # the alerts reached the control centre's feed, one notification each
    feed = fd.notify.feed(["role:control-centre"])
    assert sum(n["event"] == "handover.delayed" for n in feed) == sum(EXPECTED_ALERTS.values())

    ed = api.get(f"/api/ed/summary?day={DAY}", headers=headers).json()
    busy = next(x for x in ed["sites"] if x["site"] == "BUSY")
    assert busy["day"] == EXPECTED_ED_DAY
    assert {key: busy["now"][key] for key in EXPECTED_ED_END} == EXPECTED_ED_END
    # the patients admitted from the ED went through the bed requests and are on wards
    requests = api.get("/api/bed-requests?status=all", headers=headers).json()
    assert sorted(r["status"] for r in requests) == ["arrived"] * 4 + ["waiting"]


def opel_levels(fd: Runtime, day: tuple[Replay, dict[datetime, Any]]) -> None:
    _, seen = day
    for moment, (score, level) in HAND_WORKED.items():
        assert (round(seen[moment].score, 2), seen[moment].level) == (score, level), moment
    with fd.db.read() as s:
        rows = list(s.scalars(select(OpelLevel).order_by(OpelLevel.at)))
    recorded: dict[str, list[tuple[datetime, int, int | None]]] = {}
    for r in rows:
        recorded.setdefault(r.scope, []).append((r.at, r.level, r.previous))
    assert recorded == levels(at(5, "10:00"), at(7, "00:00"))
    # BUSY: 1 → 2 → 1 around E14's night, 2 from noon (beds full), 3 when the evening's
    # crews and DTA waits pile up, back to 2 once the queue clears
    assert [level for _, level, _ in recorded["BUSY"]] == [1, 2, 1, 2, 3, 2]
    # NEAR at 19:15: its only crew in the last 4 h is the 15:30 one (47 min, band 4); with no
    # NCTR value the weights are 85, so 20 * 100 / 85 = 23.5 → OPEL 2, until that crew leaves
    # the window. System at 19:15: (24 * 45 + 20 * 23.5 + 20 * 0) / 64 = 24.2 → OPEL 2; at
    # 20:45: 24 * 31.7 / 64 = 11.9, below 20 - 5 → OPEL 1.
    assert [(t.strftime("%H:%M"), level) for t, level, _ in recorded["system"][1:]] == [
        ("19:15", 2),
        ("20:45", 1),
    ]
    changes = [n for n in fd.notify.feed(["role:control-centre"]) if n["event"] == "opel.changed"]
    assert len(changes) == sum(len(x) - 1 for x in recorded.values())


def the_daily_report(fd: Runtime, api: TestClient) -> None:
    r = api.get(f"/api/reports/daily?day={DAY}", headers=auth(fd, "read-only"))
    assert r.status_code == 200
    report = r.json()
    busy = next(x for x in report["sites"] if x["site"] == "BUSY")
    for key, value in EXPECTED_HANDOVERS["BUSY"].items():
        assert busy["handovers"][key] == value, key
    assert {k: report["total"]["handovers"][k] for k in EXPECTED_HANDOVERS["system"]} == (
        EXPECTED_HANDOVERS["system"]
    )
    assert busy["ed"] == EXPECTED_ED_DAY
    assert busy["ed_waiting"]["waiting_for_bed"] == 1
    # 08:00 snapshot: 20 preloaded + E14 = 21 of 24 G&A beds; 4 escalation beds open; the two
    # patients ready since the 5th have no criteria to reside
    assert (busy["beds"]["ga_occupied"], busy["beds"]["ga_open"]) == (21, 24)
    assert busy["beds"]["escalation_open"] == 4
    assert busy["no_criteria_to_reside"] == 2
    # OPEL: 1 at midnight; changes at 00:15, 00:30, 12:00, 19:15, 20:45; highest 3; ends at 2
    assert {k: busy["opel"][k] for k in ("level", "highest", "changes")} == {
        "level": 2,
        "highest": 3,
        "changes": 5,
    }
    csv = api.get(f"/api/reports/daily?day={DAY}&format=csv", headers=auth(fd, "read-only")).text
    assert "BUSY" in csv and "5.48" in csv
