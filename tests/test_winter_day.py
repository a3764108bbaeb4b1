"""Replay a winter day at a busy site and check every figure against the hand calculation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import auth
from tests.winter_day import (
    DAY,
    EXPECTED_ALERTS,
    EXPECTED_ED_DAY,
    EXPECTED_ED_END,
    EXPECTED_HANDOVERS,
    replay,
)
from wardwatch.core.clock import ManualClock
from wardwatch.runtime import Runtime


def test_a_winter_day_by_hand(fd: Runtime, clock: ManualClock, client: TestClient) -> None:
    run = replay(fd, clock)
    headers = auth(fd, "control-centre")
    handovers = client.get(f"/api/handovers/summary?day={DAY}", headers=headers).json()
    by_site = {x["site"]: x for x in handovers["sites"]} | {"system": handovers["system"]}
    for scope, expected in EXPECTED_HANDOVERS.items():
        got = {key: by_site[scope][key] for key in expected}
        assert got == expected, scope
    assert by_site["FAR"]["arrivals"] == 0
    assert run.alerts == EXPECTED_ALERTS
    # the alerts reached the control centre's feed, one notification each
    feed = fd.notify.feed(["role:control-centre"])
    assert sum(n["event"] == "handover.delayed" for n in feed) == sum(EXPECTED_ALERTS.values())

    ed = client.get(f"/api/ed/summary?day={DAY}", headers=headers).json()
    busy = next(x for x in ed["sites"] if x["site"] == "BUSY")
    assert busy["day"] == EXPECTED_ED_DAY
    assert {key: busy["now"][key] for key in EXPECTED_ED_END} == EXPECTED_ED_END
    # the patients admitted from the ED went through the bed requests and are on wards
    requests = client.get("/api/bed-requests?status=all", headers=headers).json()
    assert sorted(r["status"] for r in requests) == ["arrived"] * 4 + ["waiting"]
