"""The live stream over a real socket: changes arrive after commit; reconnects miss nothing."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.serving import serving
from wardwatch.app import create_app
from wardwatch.capacity.schemas import AdmitRequest, PatientIn
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import SYSTEM
from wardwatch.core.errors import Conflict
from wardwatch.runtime import Runtime


@pytest.fixture
def server(small: Runtime) -> Iterator[str]:
    """The app on a real socket, without its lifespan: the periodic checks it starts put the
    system's first OPEL levels on the stream whenever their first pass ends, which on a busy
    machine can be after a test has subscribed (seen under pytest-xdist), and the tests here
    count exactly what reaches the stream."""
    small.settings.sse_heartbeat_seconds = 0.2  # so closed streams are noticed quickly
    with serving(create_app(small), lifespan=False) as url:
        yield url


def _reader(
    url: str, headers: dict[str, str], out: queue.Queue[dict[str, Any]], stop: threading.Event
) -> None:
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=None)) as c,
        c.stream("GET", f"{url}/api/stream", headers=headers) as r,
    ):
        out.put({"status": r.status_code})
        frame: dict[str, Any] = {}
        for line in r.iter_lines():
            if stop.is_set():
                return
            if line.startswith("id: "):
                frame["id"] = int(line[4:])
            elif line.startswith("event: "):
                frame["event"] = line[7:]
            elif line.startswith("data: "):
                frame["data"] = json.loads(line[6:])
            elif line == "" and frame:
                out.put(frame)
                frame = {}


def _listen(
    url: str, headers: dict[str, str]
) -> tuple[queue.Queue[dict[str, Any]], threading.Event]:
    q: queue.Queue[dict[str, Any]] = queue.Queue()
    stop = threading.Event()
    threading.Thread(target=_reader, args=(url, headers, q, stop), daemon=True).start()
    assert q.get(timeout=10) == {"status": 200}
    return q, stop


def _wait_subscribed(rt: Runtime, n: int) -> None:
    deadline = time.monotonic() + 5
    while rt.bus.subscriber_count < n:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_changes_reach_a_connected_client(small: Runtime, server: str) -> None:
    headers = auth(small, "read-only")
    q, stop = _listen(server, headers)
    _wait_subscribed(small, 1)
    bed = small.capacity.list_beds(BedFilter(code="ACU1-AMU-01"))[0]
    stay = small.capacity.admit(
        AdmitRequest(bed_id=bed.id, patient=PatientIn(local_id="L1")), SYSTEM
    )
    frame = q.get(timeout=5)
    while frame.get("event") != "change":
        frame = q.get(timeout=5)
    assert frame["data"]["type"] == "stay.admitted"
    assert frame["data"]["bed_id"] == bed.id and frame["data"]["ward"] == "ACU1-AMU"
    assert frame["data"]["data"]["to_state"] == "occupied"
    assert frame["data"]["data"]["stay_id"] == stay.id
    assert frame["id"] == frame["data"]["seq"]
    stop.set()


def test_a_refused_change_sends_nothing(small: Runtime, server: str) -> None:
    headers = auth(small, "read-only")
    q, stop = _listen(server, headers)
    _wait_subscribed(small, 1)
    bed = small.capacity.list_beds(BedFilter(code="ACU1-AMU-01"))[0]
    with pytest.raises(Conflict):
        small.capacity.change_bed_state(bed.id, BedState.CLEANING, None, SYSTEM)
    small.capacity.change_bed_state(bed.id, BedState.AWAITING_CLEAN, None, SYSTEM)
    frame = q.get(timeout=5)
    while frame.get("event") != "change":
        frame = q.get(timeout=5)
    assert frame["data"]["data"]["to_state"] == "awaiting_clean"  # the refused one never came
    stop.set()


def test_reconnect_with_last_event_id_replays_what_was_missed(small: Runtime, server: str) -> None:
    headers = auth(small, "read-only")
    last_seq = max(
        e["seq"]
        for e in httpx.get(f"{server}/api/events", params={"limit": 5000}, headers=headers).json()
    )
    beds = small.capacity.list_beds(BedFilter(ward="ACU1-AMU"))
    for bed in beds[:3]:  # while nobody is connected
        small.capacity.change_bed_state(bed.id, BedState.AWAITING_CLEAN, None, SYSTEM)
    q, stop = _listen(server, {**headers, "Last-Event-ID": str(last_seq)})
    frames = []
    while len(frames) < 6:  # three bed changes, and the cleaning task each one asked for
        frame = q.get(timeout=5)
        if frame.get("event") == "change":
            frames.append(frame)
    got = [f for f in frames if f["data"]["type"] == "bed.state_changed"]
    assert [f["data"]["bed_id"] for f in got] == [b.id for b in beds[:3]]
    assert [f["data"]["type"] for f in frames].count("task.created") == 3
    assert [f["id"] for f in frames] == sorted(f["id"] for f in frames)
    assert frames[0]["id"] == last_seq + 1
    stop.set()


def test_stream_needs_a_token(small: Runtime, server: str) -> None:
    r = httpx.get(f"{server}/api/stream", timeout=5)
    assert r.status_code == 401


def test_concurrent_http_allocations_of_one_bed(small: Runtime, server: str) -> None:
    """Eight clients POST an admission into the same bed at once over HTTP: one 201."""
    headers = auth(small, "ward")
    bed = small.capacity.list_beds(BedFilter(code="ACU1-AMU-02"))[0]
    barrier = threading.Barrier(8)
    codes: queue.Queue[int] = queue.Queue()

    def post(i: int) -> None:
        with httpx.Client(timeout=30) as c:
            barrier.wait()
            r = c.post(
                f"{server}/api/stays",
                headers=headers,
                json={"bed_id": bed.id, "patient": {"local_id": f"HTTP{i}"}},
            )
            codes.put(r.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    got = sorted(codes.get_nowait() for _ in range(8))
    assert got == [201] + [409] * 7
    assert len(small.capacity.list_stays()) == 1


def test_a_revoked_token_ends_the_stream(small: Runtime, server: str) -> None:
    _, token = small.auth.create_token(role="read-only", name="screen")
    q, stop = _listen(server, {"Authorization": f"Bearer {token}"})
    small.auth.revoke(small.auth.authenticate(token).token_id)
    deadline = time.monotonic() + 5
    while True:
        frame = q.get(timeout=5)
        if frame.get("event") == "error":
            break
        assert time.monotonic() < deadline
    assert frame["data"] == {"reason": "token revoked"}
    stop.set()
