"""FHIR Bundles handled in ingest worker processes (``wardwatch.ingest.pool``): real worker
processes (spawned) over the real PostgreSQL, behind a real server, with the server's own
live streams carrying what the workers did."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import auth
from tests.serving import serving
from tests.test_fhir_observations import bundle, full_set, valid
from tests.test_notify import listen_to
from wardwatch.app import create_app
from wardwatch.cli import app as cli
from wardwatch.config import Settings
from wardwatch.core.clock import ManualClock
from wardwatch.core.errors import Unavailable
from wardwatch.db.session import make_engine
from wardwatch.ingest import pool as ingest_pool
from wardwatch.ingest.pool import IngestPool
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Reading, Rejected

#: A set scoring NEWS2 11 (an emergency alert), code -> (value, UCUM unit).
SICK: dict[str, tuple[Any, str | None]] = {
    "9279-1": (26, "/min"),
    "59408-5": (90, "%"),
    "8480-6": (99, "mm[Hg]"),
    "8867-4": (118, "/min"),
    "67775-7": ("A", None),
    "8310-5": (38.6, "Cel"),
}
FHIR = "application/fhir+json"
START = datetime(2026, 1, 12, tzinfo=UTC)


def _enrol(c: httpx.Client, h: dict[str, str], serial: str) -> dict[str, Any]:
    assert c.post("/api/virtual-ward/devices", headers=h, json={"serial": serial}).status_code < 300
    r = c.post(
        "/api/virtual-ward/enrolments",
        headers=h,
        json={
            "patient": {"sex": "male", "local_id": f"P-{serial}"},
            "ward": "VW1-FRA",
            "plan": {"mode": "spot", "times_per_day": 4},
            "devices": [serial],
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _post(c: httpx.Client, h: dict[str, str], resources: list[Any]) -> httpx.Response:
    return c.post("/fhir", headers={**h, "Content-Type": FHIR}, json=bundle(resources, "batch"))


def _statuses(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text[:500]
    return [e["response"]["status"] for e in valid(r.json())["entry"]]


def _next(frames: queue.Queue[dict[str, Any]], event: str, type: str) -> dict[str, Any]:
    """The first ``event`` frame about ``type`` within 15 s."""
    deadline = time.monotonic() + 15
    while (left := deadline - time.monotonic()) > 0:
        frame = frames.get(timeout=left)
        data = frame.get("data", {})
        if frame.get("event") == event and type in (data.get("event"), data.get("type")):
            return frame
    raise AssertionError(f"no {event} frame about {type} in 15 s")


def _counts(rt: Runtime) -> tuple[int, int]:
    with rt.db.read() as s:
        readings = s.scalar(select(func.count()).select_from(Reading)) or 0
        rejected = s.scalar(select(func.count()).select_from(Rejected)) or 0
    return readings, rejected


@pytest.mark.postgres
def test_bundles_go_to_worker_processes_and_their_alerts_reach_the_servers_streams(
    prt: Runtime,
) -> None:
    nurse, device = auth(prt, "clinician", "nurse"), auth(prt, "device", "gateway")
    app = create_app(prt)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        pool = app.state.ingest
        assert isinstance(pool, IngestPool)
        workers = pool.pids
        assert len(workers) == 2 and os.getpid() not in workers
        team = _enrol(c, nurse, "POOL-1")["team"]
        _enrol(c, nurse, "POOL-2")
        feed = listen_to(f"{base}/api/feeds/stream?audience=team:{team}", nurse)
        changes = listen_to(f"{base}/api/stream", auth(prt, "control-centre", "desk"))
        now = datetime.now(UTC) + timedelta(seconds=1)
        sets = full_set("POOL-1", now, "sick", SICK) + full_set("POOL-2", now, "calm")

        answer = _post(c, device, sets)
        assert _statuses(answer) == ["201 Created"] * 12
        assert answer.headers["content-type"] == FHIR
        assert _counts(prt) == (12, 0)
        # The alert was raised in a worker, and reaches the team through the server's feed.
        alert = _next(feed, "notification", "alert.raised")
        assert alert["data"]["subject"] == "NEWS2 11: emergency response"
        # And the event it logged reaches the server's change stream.
        assert _next(changes, "change", "alert.raised")["data"]["data"]["severity"] == "emergency"
        # Sent again: stored once, answered as resends with the first copy's ids.
        again = _post(c, device, sets)
        assert _statuses(again) == ["200 OK"] * 12
        first = [e["response"]["location"] for e in answer.json()["entry"]]
        assert [e["response"]["location"] for e in again.json()["entry"]] == first
        assert _counts(prt) == (12, 0)
        assert pool.pids == workers  # the same two processes served both


@pytest.mark.postgres
def test_a_bundle_refused_whole_in_a_worker_is_kept_and_answered(prt: Runtime) -> None:
    device = auth(prt, "device", "gateway")
    app = create_app(prt)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/fhir", headers={**device, "Content-Type": FHIR}, content=b'{"resourceType"')
        assert r.status_code == 400
        body = valid(r.json())
        assert body["resourceType"] == "OperationOutcome"
        assert "not JSON" in body["issue"][0]["diagnostics"]
        assert _counts(prt) == (0, 1)  # kept for inspection, by the worker


@pytest.mark.postgres
def test_a_worker_killed_between_requests_is_replaced_and_nothing_is_lost(prt: Runtime) -> None:
    nurse, device = auth(prt, "clinician", "nurse"), auth(prt, "device", "gateway")
    app = create_app(prt)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        pool = app.state.ingest
        _enrol(c, nurse, "POOL-3")
        before = pool.pids
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not pool._executor._broken and time.monotonic() < deadline:
            time.sleep(0.05)  # until the pool has noticed
        at = datetime.now(UTC) + timedelta(seconds=1)
        assert _statuses(_post(c, device, full_set("POOL-3", at, "k"))) == ["201 Created"] * 6
        assert _counts(prt) == (6, 0)
        assert not set(pool.pids) & set(before)  # a new pool took the request


@pytest.mark.postgres
def test_a_bundle_whose_worker_is_killed_mid_request_is_answered_503_and_resent_once(
    prt: Runtime,
) -> None:
    """The whole path: a 1,998-reading Bundle, both workers killed while it is in hand, a 503
    with Retry-After and an OperationOutcome; the resend stores every reading exactly once."""
    nurse, device = auth(prt, "clinician", "nurse"), auth(prt, "device", "gateway")
    app = create_app(prt)
    with serving(app) as base, httpx.Client(base_url=base, timeout=60) as c:
        pool = app.state.ingest
        _enrol(c, nurse, "POOL-4")
        start = datetime.now(UTC) + timedelta(seconds=1)
        sets = [
            r
            for n in range(333)  # half a second apart: all within the device-clock tolerance
            for r in full_set("POOL-4", start + timedelta(seconds=n / 2), f"big{n}")
        ]
        answers: queue.Queue[httpx.Response] = queue.Queue()
        sender = threading.Thread(target=lambda: answers.put(_post(c, device, sets)))
        workers = pool.pids
        sender.start()
        deadline = time.monotonic() + 30
        while not pool._executor._pending_work_items:  # until the server has handed it over
            assert time.monotonic() < deadline, "the Bundle never reached the pool"
            time.sleep(0.001)
        for pid in workers:  # a worker reading, checking or storing it (~0.2 s in all)
            os.kill(pid, signal.SIGKILL)
        first = answers.get(timeout=60)
        assert first.status_code == 503, first.text[:300]
        assert first.headers["retry-after"] == "1"
        outcome = valid(first.json())
        assert outcome["issue"][0]["code"] == "transient"
        assert "send the request again" in outcome["issue"][0]["diagnostics"]
        kept, _ = _counts(prt)
        assert kept in (0, 1998)  # all of it or none of it, never a part
        again = _statuses(_post(c, device, sets))
        assert set(again) == ({"200 OK"} if kept else {"201 Created"}) and len(again) == 1998
        assert _counts(prt) == (1998, 0)


@pytest.mark.postgres
def test_a_worker_dying_mid_request_answers_503_and_the_next_request_works(
    prt: Runtime,
) -> None:
    pool = IngestPool(prt, 1)
    try:
        with pytest.raises(Unavailable, match="send the request again"):
            asyncio.run(pool.call(os._exit, 3))
        assert asyncio.run(pool.call(ingest_pool._ready)) == 0
    finally:
        pool.close()


def test_ingest_workers_are_refused_where_they_cannot_be_right(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ww.db'}")
    sqlite = Runtime(
        settings=Settings(data_dir=tmp_path),
        clock=ManualClock(START),
        engine=engine,
    )
    with pytest.raises(ValueError, match="need PostgreSQL"):
        IngestPool(sqlite, 2)
    engine.dispose()
    result = CliRunner().invoke(
        cli, ["serve", "--ingest-workers", "2"], env={"WARDWATCH_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "need PostgreSQL" in result.output


@pytest.mark.postgres
def test_ingest_workers_refuse_a_clock_that_is_not_the_systems(pg_url: str) -> None:
    rt = Runtime.build(Settings(database_url=pg_url), clock=ManualClock(START), migrate_db=False)
    try:
        with pytest.raises(ValueError, match="system clock"):
            IngestPool(rt, 1)
    finally:
        rt.close()
