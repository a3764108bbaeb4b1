"""Benchmark: occupancy snapshots of a national-size system (default 100,000 beds).

Loads a synthetic system of 200 sites through ``SystemService.load`` (as the CLI does), puts
~93% of beds into ``occupied`` (and a few percent into awaiting clean, cleaning, reserved and
blocked) with bulk SQL -- benchmark set-up only, bypassing the service -- and appends one
matching event per changed bed so point-in-time snapshots have something to replay. Then it
times, on the same engine:

- baseline: a bare ``SELECT count(*) FROM beds``;
- ``rt.occupancy.live()`` (system + sites) and ``live(include_wards=True)``;
- ``GET /api/occupancy`` (and ``?wards=true``) from a real uvicorn server in a thread: the
  same snapshot plus token check, JSON encoding and HTTP;
- the parts of ``live()`` one by one (the GROUP BY, the ward-meta query, the Python
  aggregation) to show where the time goes;
- ``rt.occupancy.at(...)`` at a moment between loading and the state changes, and just after.

Goal (from the issue): the live snapshot's p95 under 50 ms at 100,000 beds on PostgreSQL.

Usage: ``.venv/bin/python bench/bench_snapshot.py --backend both --json out.json``
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from common import (
    Timing,
    analyze,
    base_parser,
    fmt,
    load_system,
    machine_info,
    markdown_table,
    national_spec,
    open_runtime,
    print_machine,
    selected_backends,
    serve,
    set_bed_states,
    time_calls,
    time_interleaved,
    write_json,
)
from wardwatch.capacity import counts as bed_counts
from wardwatch.capacity import occupancy as occ
from wardwatch.runtime import Runtime

GOAL_P95_MS = 50.0
BASELINE = "baseline: SELECT count(*) FROM beds"


def parse_args() -> Any:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, default=100_000, help="beds in the system")
    parser.add_argument("--sites", type=int, default=200, help="sites in the system")
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each live case")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument(
        "--part-runs", type=int, default=20, help="timed runs of each part of live()"
    )
    parser.add_argument(
        "--http-runs", type=int, default=20, help="timed GETs of /api/occupancy (0: skip)"
    )
    parser.add_argument("--at-runs", type=int, default=5, help="timed runs of each at() case")
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of live() per backend"
    )
    return parser.parse_args()


def bench_backend(backend: str, args: Any) -> dict[str, Any]:
    spec = national_spec(beds=args.beds, sites=args.sites)
    wards = sum(len(s.wards) for s in spec.sites)
    out: dict[str, Any] = {"backend": backend, "beds": args.beds, "sites": args.sites}
    out["wards"] = wards
    with open_runtime(backend) as rt:
        print(f"[{backend}] loading {args.beds:,} beds in {wards:,} wards ...", flush=True)
        out["load_seconds"] = round(load_system(rt, spec), 2)
        time.sleep(0.01)
        between = datetime.now(UTC)  # after every bed.created event, before the changes
        time.sleep(0.01)
        t0 = time.perf_counter()
        out["states_set"] = set_bed_states(rt)
        out["set_states_seconds"] = round(time.perf_counter() - t0, 2)
        after = datetime.now(UTC)
        t0 = time.perf_counter()
        analyze(rt.engine)
        out["analyze_seconds"] = round(time.perf_counter() - t0, 2)
        print(
            f"[{backend}] loaded in {out['load_seconds']} s; bulk SQL state set-up (not through "
            f"the service) {out['set_states_seconds']} s: {out['states_set']}",
            flush=True,
        )
        out["check"] = _check(rt, args.beds, out["states_set"])
        out["timings"] = _time_cases(rt, args, between, after)
        out["sizes_bytes"] = {
            "live": len(json.dumps(rt.occupancy.live())),
            "live_wards": len(json.dumps(rt.occupancy.live(include_wards=True))),
        }
        if args.profile:
            out["profile"] = {
                "live": _profile(lambda: rt.occupancy.live(), 10),
                "live_wards": _profile(lambda: rt.occupancy.live(include_wards=True), 10),
            }
    return out


def _check(rt: Runtime, beds: int, states: dict[str, int]) -> dict[str, Any]:
    """The snapshot must add up: every bed counted, the occupied ones as set up."""
    snap = rt.occupancy.live()["system"]
    ok = snap["total"] == beds and snap["occupied"] == states["occupied"]
    print(
        f"[{rt.db.dialect}] check: total {snap['total']:,}, occupied {snap['occupied']:,}, "
        f"occupancy {snap['occupancy']}: {'ok' if ok else 'MISMATCH'}",
        flush=True,
    )
    return {"ok": ok, "total": snap["total"], "occupied": snap["occupied"]}


def _time_cases(rt: Runtime, args: Any, between: datetime, after: datetime) -> dict[str, Timing]:
    def baseline() -> None:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM beds")).scalar_one()

    def group_by() -> None:
        with rt.db.read() as s:
            bed_counts.grouped(s)

    def kept() -> None:
        with rt.db.read() as s:
            occ.live_counts(s)

    def meta() -> None:
        with rt.db.read() as s:
            occ.ward_meta(s)

    with rt.db.read() as s:
        rows, wards = occ.live_counts(s), occ.ward_meta(s)
    now = datetime.now(UTC)

    live_cases = {
        BASELINE: baseline,
        "live() system + sites": lambda: rt.occupancy.live(),
        "live(include_wards=True)": lambda: rt.occupancy.live(include_wards=True),
    }
    part_cases = {
        "part: GROUP BY ward, state over beds (reference)": group_by,
        "part: kept per-ward counters query": kept,
        "part: ward-meta query": meta,
        "part: Python snapshot() aggregation": lambda: occ.snapshot(
            rows, wards, at=now, target=0.92
        ),
        "part: Python snapshot(include_wards=True)": lambda: occ.snapshot(
            rows, wards, at=now, target=0.92, include_wards=True
        ),
    }
    timings = time_interleaved(live_cases, runs=args.runs, warmup=args.warmup)
    timings.update(time_interleaved(part_cases, runs=args.part_runs, warmup=2))
    for name, t in timings.items():
        print(f"[{rt.db.dialect}] {name}: {_short(t)}", flush=True)
    if args.http_runs > 0:
        _, token = rt.auth.create_token(role="read-only", name="bench")
        with (
            serve(rt) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client,
        ):

            def get(path: str) -> Callable[[], None]:
                def call() -> None:
                    resp = client.get(path)
                    if resp.status_code != 200:
                        raise RuntimeError(f"GET {path}: HTTP {resp.status_code}")

                return call

            http = time_interleaved(
                {
                    "HTTP GET /api/occupancy": get("/api/occupancy"),
                    "HTTP GET /api/occupancy?wards=true": get("/api/occupancy?wards=true"),
                },
                runs=args.http_runs,
                warmup=2,
            )
        for name, t in http.items():
            print(f"[{rt.db.dialect}] {name}: {_short(t)}", flush=True)
        timings.update(http)
    at_cases = {
        "at(): before the state changes": lambda: rt.occupancy.at(between),
        "at(): after the state changes": lambda: rt.occupancy.at(after),
    }
    for name, fn in at_cases.items():
        timings[name] = time_calls(fn, runs=args.at_runs, warmup=1)
        print(f"[{rt.db.dialect}] {name}: {_short(timings[name])}", flush=True)
    return timings


def _short(t: Timing) -> str:
    return f"median {t.median_ms:.2f} ms, p95 {t.p95_ms:.2f} ms, min {t.min_ms:.2f} ms"


def _profile(fn: Any, runs: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(runs):
        fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    text_out = buf.getvalue()
    print(text_out)
    return text_out


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        timings: dict[str, Timing] = r["timings"]
        base = timings[BASELINE]
        for name, t in timings.items():
            rows.append(
                [
                    r["backend"],
                    name,
                    t.runs,
                    t.median_ms,
                    t.p95_ms,
                    t.min_ms,
                    t.median_ms / base.median_ms,
                ]
            )
    table = markdown_table(
        ["backend", "case", "runs", "median ms", "p95 ms", "min ms", "median / baseline median"],
        rows,
    )
    setup = markdown_table(
        ["backend", "beds", "wards", "sites", "load s", "bulk state set-up s", "check"],
        [
            [
                r["backend"],
                r["beds"],
                r["wards"],
                r["sites"],
                r["load_seconds"],
                r["set_states_seconds"],
                "ok" if r["check"]["ok"] else "MISMATCH",
            ]
            for r in results
        ],
    )
    return f"{setup}\n\n{table}"


def goal_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        live = r["timings"]["live() system + sites"]
        met = live.p95_ms < GOAL_P95_MS
        lines.append(
            f"goal ({r['backend']}, {r['beds']:,} beds): live() p95 {fmt(live.p95_ms)} ms "
            f"vs < {GOAL_P95_MS:.0f} ms: {'MET' if met else 'MISSED'}"
            + ("" if r["backend"] == "postgres" else " (the goal is stated for PostgreSQL)")
        )
    return lines


def main() -> None:
    args = parse_args()
    info = machine_info()
    print_machine(info)
    results = [bench_backend(b, args) for b in selected_backends(args.backend)]
    print()
    print("State set-up used bulk SQL UPDATEs of beds.state (not the service) plus one")
    print("INSERT ... SELECT of matching event_log rows; no stays exist for occupied beds.")
    print()
    print(report(results))
    print()
    for line in goal_lines(results):
        print(line)
    write_json(
        args.json,
        {
            "benchmark": "snapshot",
            "machine": info,
            "args": vars(args),
            "goal_p95_ms": GOAL_P95_MS,
            "results": [
                {**r, "timings": {k: v.to_json() for k, v in r["timings"].items()}} for r in results
            ],
        },
    )


if __name__ == "__main__":
    main()
