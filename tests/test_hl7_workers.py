"""HL7 v2 batches applied in ingest worker processes (``wardwatch serve --ingest-workers N``):
real spawned workers over the real PostgreSQL, real HL7 bytes on a real socket, and the
server's own live stream carrying what the workers did."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import auth
from tests.hl7util import ack_fields, adt, pid, pv1
from tests.serving import free_port, serving
from tests.test_notify import listen_to
from wardwatch.app import create_app
from wardwatch.capacity.models import Stay
from wardwatch.capacity.service import BedFilter
from wardwatch.core.errors import Unavailable
from wardwatch.ingest.hl7v2.mllp import GroupCommit, MllpServer
from wardwatch.ingest.hl7v2.models import Hl7Message
from wardwatch.ingest.hl7v2.service import Handled
from wardwatch.ingest.pool import IngestPool
from wardwatch.runtime import Runtime

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
T0 = "20260105100000"
AMU_BEDS = 6


def _frame(raw: bytes) -> bytes:
    return SB + raw + EB + CR


def _ack(sock: socket.socket) -> str | None:
    """The ACK code read from ``sock``, or None if the server closed it without one."""
    data = b""
    while not data.endswith(EB + CR):
        try:
            chunk = sock.recv(65536)
        except ConnectionError:
            return None
        if not chunk:
            return None
        data += chunk
    return ack_fields(data[1:-2].decode())["code"]


def _send(port: int, raw: bytes) -> str | None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(_frame(raw))
        return _ack(sock)


def _admission(n: int) -> bytes:
    return adt(
        "A01", T0, pid(f"W{n}", sex="U"), pv1(f"ACU1-AMU^^{n + 1}^ACU1"), control_id=f"WK-{n}"
    )


def _occupied(rt: Runtime) -> set[str]:
    beds = rt.capacity.list_beds(BedFilter(site="ACU1"))
    return {b.code for b in beds if b.state.value == "occupied"}


def _in_parallel(port: int, messages: list[bytes]) -> list[str | None]:
    """Each message on its own connection, all at once; their ACK codes (None: closed)."""
    codes: list[str | None] = [None] * len(messages)

    def one(i: int) -> None:
        codes[i] = _send(port, messages[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(messages))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return codes


def _next_change(frames: queue.Queue[dict[str, Any]], type: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while (left := deadline - time.monotonic()) > 0:
        frame = frames.get(timeout=left)
        if frame.get("event") == "change" and frame.get("data", {}).get("type") == type:
            return frame
    raise AssertionError(f"no change frame about {type} in 15 s")


@pytest.mark.postgres
def test_hl7_batches_are_applied_in_worker_processes_and_reach_the_servers_stream(
    prt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(items: object) -> None:
        raise AssertionError("the server process applied a batch itself")

    monkeypatch.setattr(prt.hl7, "handle_batch", not_here)
    port = free_port()
    app = create_app(prt, mllp_port=port)
    with serving(app) as base:
        pool = app.state.ingest
        assert isinstance(pool, IngestPool) and app.state.mllp._commits.lanes == 2
        workers = pool.pids
        changes = listen_to(f"{base}/api/stream", auth(prt, "control-centre", "desk"))

        codes = _in_parallel(port, [_admission(n) for n in range(AMU_BEDS)])

        assert codes == ["AA"] * AMU_BEDS
        assert _occupied(prt) == {f"ACU1-AMU-0{n + 1}" for n in range(AMU_BEDS)}
        # Committed in a worker, published by the server: the live stream carries it.
        assert _next_change(changes, "stay.admitted")["data"]["ward"] == "ACU1-AMU"
        # A discharge through a worker: the bed awaits cleaning, the cleaners' task is made.
        out = adt("A03", T0, pid("W0", sex="U"), pv1("ACU1-AMU^^1^ACU1"), control_id="WK-out")
        assert _send(port, out) == "AA"
        discharged = _next_change(changes, "stay.discharged")["data"]
        assert discharged["data"]["bed"] == "ACU1-AMU-01"
        assert _next_change(changes, "task.created")["data"]["data"]["kind"] == "cleaning"
        # A resend is answered from the stored copy and applied once.
        assert _send(port, _admission(1)) == "AA"
        with prt.db.read() as s:
            assert s.scalar(select(func.count()).select_from(Stay)) == AMU_BEDS
        assert pool.pids == workers


@pytest.mark.postgres
def test_a_batch_whose_workers_are_killed_is_never_acknowledged_and_the_resend_applies_once(
    prt: Runtime,
) -> None:
    """Both workers killed while batches are in hand: those senders' connections close
    without an ACK (never an AA for something not committed); each sends its message again
    and every admission is then on the board exactly once."""
    port = free_port()
    app = create_app(prt, mllp_port=port)
    messages = [_admission(n) for n in range(AMU_BEDS)]
    with serving(app):
        pool = app.state.ingest
        workers = pool.pids
        answers: list[str | None] = []
        sender = threading.Thread(target=lambda: answers.extend(_in_parallel(port, messages)))
        sender.start()
        deadline = time.monotonic() + 30
        while not pool._executor._pending_work_items:  # a batch has been handed over
            assert time.monotonic() < deadline, "no batch reached the pool"
            time.sleep(0.0005)
        for worker in workers:
            os.kill(worker, signal.SIGKILL)
        sender.join(timeout=90)
        assert len(answers) == AMU_BEDS
        assert None in answers  # the killed batch's senders got no ACK
        assert set(answers) <= {"AA", None}  # and nobody got a wrong one
        again = [_send(port, raw) for raw, code in zip(messages, answers, strict=True) if not code]
        assert again == ["AA"] * answers.count(None)
        assert not set(pool.pids) & set(workers)  # a new pool took the resends
    assert _occupied(prt) == {f"ACU1-AMU-0{n + 1}" for n in range(AMU_BEDS)}
    with prt.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Stay)) == AMU_BEDS
        kept = s.scalars(select(Hl7Message.status)).all()
    assert sorted(kept) == ["accepted"] * AMU_BEDS


def test_group_commit_keeps_up_to_its_lanes_in_hand_never_two_of_one_connection() -> None:
    """Two lanes: a second batch is applied while the first is in hand; a third waits for a
    lane; each connection's next message waits for its ACK."""
    in_hand: list[list[bytes]] = []
    most = 0
    release = asyncio.Event()

    async def apply(items: list[tuple[bytes, str | None]]) -> list[Handled]:
        nonlocal most
        batch = [raw for raw, _ in items]
        in_hand.append(batch)
        most = max(most, len(in_hand))
        await release.wait()
        in_hand.remove(batch)
        return [Handled(f"ACK {raw.decode()}", "AA", "accepted", "", None) for raw, _ in items]

    async def connection(commits: GroupCommit, name: str) -> list[str]:
        return [(await commits.submit(f"{name}{i}".encode(), name)).ack for i in range(2)]

    async def until(held: int) -> None:
        while len(in_hand) < held:
            await asyncio.sleep(0)

    async def main() -> list[list[str]]:
        commits = GroupCommit(apply, lanes=2)
        running = [asyncio.create_task(connection(commits, "a"))]
        await until(1)
        running += [asyncio.create_task(connection(commits, c)) for c in "bc"]
        await until(2)
        assert in_hand == [[b"a0"], [b"b0", b"c0"]]  # b and c arrived together: one batch
        running.append(asyncio.create_task(connection(commits, "d")))
        await asyncio.sleep(0.01)
        assert len(in_hand) == 2  # no third lane: d waits
        assert [raw for raw, _, _ in commits._waiting] == [b"d0"]
        release.set()
        return list(await asyncio.gather(*running))

    answers = asyncio.run(main())
    assert answers == [[f"ACK {c}0", f"ACK {c}1"] for c in "abcd"]
    assert most == 2


def test_a_batch_that_cannot_be_applied_closes_its_connections_without_an_ack(
    small: Runtime,
) -> None:
    """What the listener does when the worker holding a batch died (``Unavailable``): the
    sender sees its connection close with no ACK, and sends again on a new one."""
    failures = [Unavailable("the worker handling this request stopped")]

    async def apply(items: list[tuple[bytes, str | None]]) -> list[Handled]:
        if failures:
            raise failures.pop()
        return await asyncio.to_thread(small.hl7.handle_batch, items)

    server = MllpServer(small.hl7, host="127.0.0.1", port=0, apply_batch=apply)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        assert _send(server.port, _admission(0)) is None
        assert _occupied(small) == set()
        assert _send(server.port, _admission(0)) == "AA"
        assert _occupied(small) == {"ACU1-AMU-01"}
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
