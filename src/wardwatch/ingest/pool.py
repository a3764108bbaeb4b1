"""Ingest worker processes: FHIR Bundles of readings and HL7 v2 batches handled beside the
server's own process.

One Python process runs Python code one thread at a time. Checking, translating, scoring
and storing a Bundle of 600 readings takes ~45 ms of one core, and applying an ADT message
to the bed board ~10 ms, so a single server process saturates a core while the machine's
other cores wait. With ``ingest_workers`` set (``wardwatch serve --ingest-workers N``;
PostgreSQL only), each ``POST /fhir`` Bundle, and each group-commit batch of HL7 messages
from the MLLP listener, is handled whole in one of N worker processes, each with its own
:class:`~wardwatch.runtime.Runtime` and database connections: the same code, one
transaction as before, and the answer (the ACKs) only after the commit. The listener keeps
up to N batches in hand at once, never two messages of one connection (each waits for its
ACK), so every connection's order holds.

The server process stays the hub of everything live. A worker publishes nothing itself: with
the answer it returns the events its commit published and the feed notifications it wrote,
and the server publishes those on its own buses (the SSE streams, the caseload page) and
wakes its delivery worker for any notification left for it to send (webhooks, e-mail). So an
alert raised in a worker reaches the team exactly as one raised in the server does, a few
microseconds later. A worker keeps nothing between requests that the server could change:
every cache on the ingest path lives for one transaction or checks the structure version in
the database.

A worker that dies mid-Bundle: the database rolls its transaction back when the connection
closes, the request is answered 503 (send it again: readings are idempotent by identifier,
so a resend never stores one twice), and the next request gets a new pool. A worker that
dies mid-batch of HL7 messages: the listener closes those senders' connections without an
ACK, so each sends its message again (a message that was committed after all is then
acknowledged as a duplicate, never applied twice). A pool found
broken before a request was handed over is rebuilt and the request goes to the new one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from fastapi import Response

from wardwatch.config import Settings
from wardwatch.core import collector
from wardwatch.core.actor import Actor
from wardwatch.core.bus import EventBus
from wardwatch.core.clock import SystemClock
from wardwatch.core.errors import Unavailable, WardWatchError
from wardwatch.core.events import DomainEvent
from wardwatch.ingest.fhir.routes import FhirResponse, error_response
from wardwatch.ingest.fhir.vitals_in import bundle
from wardwatch.ingest.hl7v2.service import Handled as Hl7Handled
from wardwatch.runtime import Runtime

log = logging.getLogger(__name__)

#: Response headers a worker's answer carries that the server's own response sets again.
_SET_BY_SERVER = frozenset({"content-length", "content-type"})


class _Recorder(EventBus):
    """A bus that keeps what is published, for the worker to hand back to the server."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[DomainEvent] = []

    def publish(self, events: Iterable[DomainEvent]) -> None:
        self.seen.extend(events)


@dataclass(slots=True)
class Published:
    """What a worker's commits published, for the server to publish again on its buses."""

    events: list[DomainEvent] = field(default_factory=list)
    feed: list[DomainEvent] = field(default_factory=list)
    wake: bool = False


@dataclass(slots=True)
class Handled:
    """What a worker did with one request: the answer and what the server must publish."""

    status: int
    headers: dict[str, str]
    body: bytes
    published: Published


@dataclass(slots=True)
class Acknowledged:
    """What a worker did with a batch of HL7 messages: their answers, in order."""

    answers: list[Hl7Handled]
    published: Published


class _Worker:
    """The state of one worker process (built once, by the pool's initializer)."""

    rt: Runtime
    bus: _Recorder
    feed: _Recorder
    woken: bool = False


_worker = _Worker()


def _start(settings: Settings) -> None:
    """Initializer of each worker process: its own Runtime over the server's database."""
    # Ctrl-C reaches the whole process group; the server shuts its workers down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    bus = _Recorder()
    rt = Runtime.build(settings, clock=SystemClock(), migrate_db=False, bus=bus)
    feed = _Recorder()
    rt.notify.feed_bus = feed
    rt.notify.add_waker(_woken)
    _worker.rt, _worker.bus, _worker.feed = rt, bus, feed
    collector.settle()  # as the server does


def _woken() -> None:
    _worker.woken = True


def _ready() -> int:
    return 0


def _forget() -> None:
    """Start a request with nothing recorded."""
    _worker.bus.seen, _worker.feed.seen, _worker.woken = [], [], False


def _published() -> Published:
    return Published(_worker.bus.seen, _worker.feed.seen, _worker.woken)


def _bundle(content_type: str, body: bytes, actor: Actor) -> Handled:
    """``vitals_in.bundle`` in this worker, its answer (or error answer) as plain parts."""
    _forget()
    response: Response
    try:
        response = bundle(_worker.rt, content_type, body, actor)
    except WardWatchError as exc:
        response = error_response(exc)
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _SET_BY_SERVER}
    return Handled(response.status_code, headers, bytes(response.body), _published())


def _hl7_batch(items: list[tuple[bytes, str | None]]) -> Acknowledged:
    """``Hl7Service.handle_batch`` in this worker (it answers every message, never raises
    for one), the answers released only after its commits."""
    _forget()
    return Acknowledged(_worker.rt.hl7.handle_batch(items), _published())


def refusal(rt: Runtime) -> str | None:
    """Why ``rt`` cannot have ingest workers, or None (``serve`` asks before it starts)."""
    if rt.db.dialect != "postgresql":
        return "ingest workers need PostgreSQL: SQLite lets one process write at a time"
    if not isinstance(rt.clock, SystemClock):
        return "ingest workers keep the system clock: the server must too"
    return None


class IngestPool:
    """N worker processes for the FHIR Bundle door and the MLLP listener's batches, owned by
    the server's lifespan."""

    def __init__(self, rt: Runtime, workers: int) -> None:
        if workers < 1:
            raise ValueError("an ingest pool needs at least one worker")
        problem = refusal(rt)
        if problem:
            raise ValueError(problem)
        self.rt = rt
        self.workers = workers
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded server
            initializer=_start,
            initargs=(self.rt.settings,),
        )

    async def start(self) -> None:
        """Start every worker now (importing WardWatch takes a second or two), not on the
        first Bundle."""
        futures = [self._executor.submit(_ready) for _ in range(self.workers)]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def pids(self) -> list[int]:
        """The worker processes now running (for operators and tests; none once closed)."""
        processes = self._executor._processes or {}  # the executor's own record of them
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    def _submit(
        self, fn: Callable[..., Any], *args: Any
    ) -> tuple[ProcessPoolExecutor, Future[Any]]:
        executor = self._executor
        try:
            return executor, executor.submit(fn, *args)
        except BrokenProcessPool:  # nothing was handed over: a new pool takes it
            self._replace(executor)
            executor = self._executor
            return executor, executor.submit(fn, *args)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is broken:  # the first request to find it broken replaces it
            log.error("an ingest worker process died: starting a new pool")
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new()
            for _ in range(self.workers):  # start them now, beside the request in hand
                self._executor.submit(_ready)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker; :class:`Unavailable` if the worker died doing it."""
        executor, future = self._submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._replace(executor)
            raise Unavailable(
                "the worker handling this request stopped before it finished; nothing it "
                "had not committed was kept: send the request again"
            ) from None

    async def bundle(self, content_type: str, body: bytes, actor: Actor) -> Response:
        """A FHIR Bundle handled in a worker; its events published here, after its commit."""
        done: Handled = await self.call(_bundle, content_type, body, actor)
        self._publish(done.published)
        return FhirResponse(done.body, status_code=done.status, headers=done.headers)

    async def hl7_batch(self, items: list[tuple[bytes, str | None]]) -> list[Hl7Handled]:
        """HL7 messages applied in a worker (group commit, as ``Hl7Service.handle_batch``);
        their answers, and their events published here, after the commits. A worker that
        died doing it raises :class:`Unavailable`: none of them may be acknowledged."""
        done: Acknowledged = await self.call(_hl7_batch, items)
        self._publish(done.published)
        return done.answers

    def _publish(self, published: Published) -> None:
        if published.events:
            self.rt.bus.publish(published.events)
        if published.feed:
            self.rt.notify.feed_bus.publish(published.feed)
        if published.wake:
            self.rt.notify.wake()
