"""Benchmark: bed events per second through the service and through the HTTP API.

On a synthetic system (default 10,000 beds; the size hardly matters to a keyed write), it
measures, on each backend, for a fixed number of events or a time limit (whichever first):

- baseline: a bare transaction of one ``UPDATE beds`` and one ``INSERT INTO event_log``
  (SQLAlchemy Core, same engine, one thread): roughly the floor cost of a logged change;
- service: ``rt.capacity.change_bed_state`` cycling beds available -> reserved -> available,
  from 1 thread and from 4 threads (different beds);
- service: a patient loop admit -> discharge -> cleaning -> available (4 events a cycle);
- HTTP: ``POST /api/beds/{id}/state`` to a real uvicorn server running ``create_app(rt)`` in a
  thread of this process, from 1 client and from 4 concurrent clients (threads, own beds);
  ``GET /health`` (no token, one ``SELECT 1``) is timed too as the HTTP stack's floor.

Cases run round-robin in short slices (``--rounds``, default 4 slices of 2 s or 500 events
each), so background load on a shared machine hits them alike; the ratio to the baseline uses
the median of the per-slice rates. Every case reports events/s and per-call latency, and
checks that the event log grew by exactly one row per event. A short extra pass outside the
timed runs counts SQL statements per call.

Usage: ``.venv/bin/python bench/bench_events.py --backend both --json out.json``
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import event, func, insert, select, update

from common import (
    Timing,
    base_parser,
    load_system,
    machine_info,
    markdown_table,
    national_spec,
    open_runtime,
    print_machine,
    selected_backends,
    serve,
    summarise,
    write_json,
)
from wardwatch.capacity.models import Bed
from wardwatch.capacity.schemas import AdmitRequest, DischargeRequest, PatientIn
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.db.eventlog import EventRecord
from wardwatch.runtime import Runtime

ACTOR = Actor(name="bench", role="admin")
BEDS_PER_WORKER = 8
MAX_ERRORS = 20

#: An operation: makes one call, returns how many events it appended.
Op = Callable[[], int]


def parse_args() -> Any:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, default=10_000, help="beds in the system")
    parser.add_argument("--sites", type=int, default=20, help="sites in the system")
    parser.add_argument("--events", type=int, default=2_000, help="events per case (at most)")
    parser.add_argument("--seconds", type=float, default=8.0, help="time limit per case")
    parser.add_argument(
        "--rounds", type=int, default=4, help="slices per case, run round-robin across cases"
    )
    parser.add_argument("--clients", default="1,4", help="concurrency levels, e.g. 1,4")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP cases")
    return parser.parse_args()


# --- running a case ------------------------------------------------------------------------


@dataclass
class CaseResult:
    """One case, accumulated over the rounds it ran in."""

    name: str
    workers: int
    events: int = 0
    calls: int = 0
    seconds: float = 0.0
    errors: int = 0
    first_error: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)
    log_rows_added: int = 0
    statements_per_call: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def median_round_rate(self) -> float:
        return statistics.median(self.round_rates) if self.round_rates else 0.0

    @property
    def latency(self) -> Timing | None:
        return summarise(self.latencies_ms) if self.latencies_ms else None

    def to_json(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "name": self.name,
            "workers": self.workers,
            "events": self.events,
            "calls": self.calls,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "median_round_events_per_second": round(self.median_round_rate, 1),
            "round_events_per_second": [round(x, 1) for x in self.round_rates],
            "errors": self.errors,
            "first_error": self.first_error,
            "latency_ms": lat.to_json() if lat else None,
            "log_rows_added": self.log_rows_added,
            "statements_per_call": self.statements_per_call,
            "notes": self.notes,
        }


@dataclass
class Case:
    name: str
    ops: list[Op]
    logs_events: bool = True
    result: CaseResult | None = None


def run_slice(case: Case, *, max_events: int, max_seconds: float, rt: Runtime) -> None:
    """Run the case's ops (one thread each) until ``max_events`` or ``max_seconds``."""
    result = case.result or CaseResult(name=case.name, workers=len(case.ops))
    case.result = result
    lock = threading.Lock()
    start = threading.Barrier(len(case.ops) + 1)
    state = {"events": 0, "calls": 0, "errors": 0}
    deadline = [0.0]

    def worker(op: Op) -> None:
        mine: list[float] = []
        start.wait()
        while True:
            with lock:
                if state["events"] >= max_events or time.perf_counter() > deadline[0]:
                    break
                if state["errors"] >= MAX_ERRORS:
                    break
            t0 = time.perf_counter_ns()
            try:
                n = op()
            except Exception as exc:  # count it and go on; the report shows the first one
                with lock:
                    state["errors"] += 1
                    if result.first_error is None:
                        result.first_error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            mine.append((time.perf_counter_ns() - t0) / 1e6)
            with lock:
                state["events"] += n
                state["calls"] += 1
        with lock:
            result.latencies_ms.extend(mine)

    before = _log_rows(rt)
    threads = [threading.Thread(target=worker, args=(op,), daemon=True) for op in case.ops]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + max_seconds
    start.wait()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    added = _log_rows(rt) - before
    result.seconds += seconds
    result.events += state["events"]
    result.calls += state["calls"]
    result.errors += state["errors"]
    result.round_rates.append(state["events"] / seconds if seconds else 0.0)
    result.log_rows_added += added
    if case.logs_events and added != state["events"]:
        result.notes.append(f"event log grew by {added} rows for {state['events']} events")


def run_rounds(cases: list[Case], args: Any, rt: Runtime) -> None:
    """Run every case in ``args.rounds`` short slices, round-robin.

    A burst of background load on a shared machine then hits all cases alike, so the ratio
    of each case to the baseline stays meaningful.
    """
    per_events = max(1, args.events // args.rounds)
    per_seconds = args.seconds / args.rounds
    for _ in range(args.rounds):
        for case in cases:
            run_slice(case, max_events=per_events, max_seconds=per_seconds, rt=rt)
    for case in cases:
        r = case.result
        assert r is not None
        print(
            f"[{rt.db.dialect}] {r.name}: {r.events:,} in {r.seconds:.2f} s = "
            f"{r.events_per_second:,.1f}/s (median round {r.median_round_rate:,.1f}/s); "
            f"errors {r.errors}"
            + (f" (first: {r.first_error})" if r.first_error else "")
            + ("; " + "; ".join(r.notes) if r.notes else ""),
            flush=True,
        )


def _log_rows(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EventRecord)).scalar_one())


@contextmanager
def count_statements(rt: Runtime) -> Iterator[list[int]]:
    counter = [0]

    def _count(*_: Any) -> None:
        counter[0] += 1

    event.listen(rt.engine, "before_cursor_execute", _count)
    try:
        yield counter
    finally:
        event.remove(rt.engine, "before_cursor_execute", _count)


def statements_per_call(rt: Runtime, op: Op, calls: int = 20) -> float:
    op()  # warm: the first call may load things once
    with count_statements(rt) as counter:
        for _ in range(calls):
            op()
    return counter[0] / calls


# --- operations ----------------------------------------------------------------------------


class BedToggler:
    """Cycles its own beds available <-> reserved, round-robin."""

    def __init__(self, beds: list[str]) -> None:
        self.beds = beds
        self.state = dict.fromkeys(beds, BedState.AVAILABLE)
        self._next = itertools.cycle(beds)

    def next_change(self) -> tuple[str, BedState]:
        bed = next(self._next)
        target = BedState.RESERVED if self.state[bed] == BedState.AVAILABLE else BedState.AVAILABLE
        return bed, target

    def done(self, bed: str, target: BedState) -> None:
        self.state[bed] = target


def service_toggle_op(rt: Runtime, beds: list[str]) -> Op:
    toggler = BedToggler(beds)

    def op() -> int:
        bed, target = toggler.next_change()
        rt.capacity.change_bed_state(bed, target, None, ACTOR)
        toggler.done(bed, target)
        return 1

    return op


def patient_loop_op(rt: Runtime, bed: str, tag: str) -> Op:
    serial = itertools.count(1)

    def op() -> int:
        n = next(serial)
        stay = rt.capacity.admit(
            AdmitRequest(bed_id=bed, patient=PatientIn(local_id=f"{tag}-{n}", sex="unknown")),
            ACTOR,
        )
        rt.capacity.discharge(stay.id, DischargeRequest(destination="home", pathway=0), ACTOR)
        rt.capacity.change_bed_state(bed, BedState.CLEANING, None, ACTOR)
        rt.capacity.change_bed_state(bed, BedState.AVAILABLE, None, ACTOR)
        return 4

    return op


def baseline_op(rt: Runtime, beds: list[str]) -> Op:
    """One UPDATE + one INSERT in a write transaction, nothing else."""
    beds_t = Bed.metadata.tables["beds"]
    events_t = EventRecord.metadata.tables["event_log"]
    writer = rt.engine.execution_options(wardwatch_write=True)  # BEGIN IMMEDIATE on SQLite
    toggler = BedToggler(beds)

    def op() -> int:
        bed, target = toggler.next_change()
        now = datetime.now(UTC)
        with writer.begin() as conn:
            conn.execute(
                update(beds_t)
                .where(beds_t.c.id == bed)
                .values(state=target.value, state_since=now, version=beds_t.c.version + 1)
            )
            conn.execute(
                insert(events_t).values(
                    at=now,
                    type="bench.baseline",
                    actor=ACTOR.label,
                    bed_id=bed,
                    from_state=toggler.state[bed].value,
                    to_state=target.value,
                )
            )
        toggler.done(bed, target)
        return 1

    return op


def http_toggle_op(client: httpx.Client, beds: list[str]) -> Op:
    toggler = BedToggler(beds)

    def op() -> int:
        bed, target = toggler.next_change()
        resp = client.post(f"/api/beds/{bed}/state", json={"state": target.value})
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        toggler.done(bed, target)
        return 1

    return op


def http_health_op(client: httpx.Client) -> Op:
    """The HTTP floor: a route with no token check and one ``SELECT 1``."""

    def op() -> int:
        resp = client.get("/health")
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        return 1

    return op


# --- the benchmark -------------------------------------------------------------------------


def bench_backend(backend: str, args: Any) -> dict[str, Any]:
    levels = sorted({int(x) for x in args.clients.split(",") if x.strip()})
    needed = BEDS_PER_WORKER * (2 * sum(levels) + 6) + 4
    out: dict[str, Any] = {"backend": backend, "beds": args.beds}
    with open_runtime(backend) as rt:
        spec = national_spec(beds=args.beds, sites=args.sites)
        print(f"[{backend}] loading {args.beds:,} beds ...", flush=True)
        out["load_seconds"] = round(load_system(rt, spec), 2)
        with rt.engine.connect() as conn:
            free = list(
                conn.execute(
                    select(Bed.id).where(Bed.state == BedState.AVAILABLE.value).order_by(Bed.code)
                ).scalars()
            )
        if len(free) < needed:
            raise SystemExit(f"need {needed} available beds, have {len(free)}: raise --beds")
        pool = iter(free)

        def take(n: int) -> list[str]:
            return [next(pool) for _ in range(n)]

        cases = [Case("baseline: bare UPDATE+INSERT tx", [baseline_op(rt, take(BEDS_PER_WORKER))])]
        cases += [
            Case(
                f"service change_bed_state, {n} thread(s)",
                [service_toggle_op(rt, take(BEDS_PER_WORKER)) for _ in range(n)],
            )
            for n in levels
        ]
        cases.append(
            Case(
                "service admit+discharge+clean+available, 1 thread (4 events/call)",
                [patient_loop_op(rt, take(1)[0], "B0")],
            )
        )
        # Statements per call, counted outside the timed runs (the counter has a cost).
        stmts = {
            cases[0].name: statements_per_call(rt, baseline_op(rt, take(BEDS_PER_WORKER))),
            cases[1].name: statements_per_call(rt, service_toggle_op(rt, take(BEDS_PER_WORKER))),
            cases[-1].name: statements_per_call(rt, patient_loop_op(rt, take(1)[0], "S0"), 5),
        }
        with contextlib.ExitStack() as stack:
            if not args.no_http:
                _, token = rt.auth.create_token(role="admin", name="bench")
                url = stack.enter_context(serve(rt))

                def client(token: str | None = token) -> httpx.Client:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    return stack.enter_context(httpx.Client(base_url=url, headers=headers))

                health = Case(
                    "reference: HTTP GET /health, 1 client (calls, not events)",
                    [http_health_op(client(None))],
                    logs_events=False,
                )
                http_cases = [
                    Case(
                        f"HTTP POST /api/beds/{{id}}/state, {n} client(s)",
                        [http_toggle_op(client(), take(BEDS_PER_WORKER)) for _ in range(n)],
                    )
                    for n in levels
                ]
                cases += [health, *http_cases]
                stmts[health.name] = statements_per_call(rt, http_health_op(client(None)))
                stmts[http_cases[0].name] = statements_per_call(
                    rt, http_toggle_op(client(), take(BEDS_PER_WORKER))
                )
            run_rounds(cases, args, rt)
        results = [c.result for c in cases if c.result is not None]
        for r in results:
            r.statements_per_call = stmts.get(r.name)
        out["cases"] = results
    return out


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        cases: list[CaseResult] = r["cases"]
        base = cases[0].median_round_rate
        for c in cases:
            lat = c.latency
            rows.append(
                [
                    r["backend"],
                    c.name,
                    c.workers,
                    c.events,
                    c.seconds,
                    c.events_per_second,
                    c.median_round_rate,
                    lat.median_ms if lat else None,
                    lat.p95_ms if lat else None,
                    c.median_round_rate / base if base else None,
                    c.statements_per_call,
                    c.errors,
                ]
            )
    return markdown_table(
        [
            "backend",
            "case",
            "threads",
            "events",
            "s",
            "events/s",
            "median round events/s",
            "call median ms",
            "call p95 ms",
            "x baseline (median round)",
            "SQL stmts/call",
            "errors",
        ],
        rows,
    )


def main() -> None:
    args = parse_args()
    info = machine_info()
    print_machine(info)
    results = [bench_backend(b, args) for b in selected_backends(args.backend)]
    print()
    print(report(results))
    notes = [f"{r['backend']}: {c.name}: {n}" for r in results for c in r["cases"] for n in c.notes]
    for n in notes:
        print(f"note: {n}")
    print(f"\nmachine at the end: load average {machine_info()['loadavg']}")
    write_json(
        args.json,
        {
            "benchmark": "events",
            "machine": info,
            "args": vars(args),
            "results": [{**r, "cases": [c.to_json() for c in r["cases"]]} for r in results],
        },
    )


if __name__ == "__main__":
    main()
