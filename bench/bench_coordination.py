"""Benchmark: discharge → cleaning notification at a connected SSE client and a webhook
receiver, median and p99, while 100 events/s flow.

``wardwatch serve`` runs in its own process (as in production) over SQLite or PostgreSQL,
with a rules file that sends each new cleaning task to the housekeeping team's live feed and
to a webhook. This process holds the measuring ends: an SSE client on
``/api/feeds/stream``, a webhook receiver (a real HTTP server, keep-alive) and the probes; a
third process makes the background load (the loop itself through the HTTP API at a fixed
rate, ~2.4 events per request, counted from the event log). A probe is a
discharge through ``POST /api/stays/{id}/discharge`` every ``1/probe_rate`` seconds, timed
from just before the request is sent to the moment each end receives the notification.

Baseline measured in the same run: the discharge request's own round trip (the commit
included), so the ratio shows what notification delivery adds.

Goal (issue 4): p99 under 200 ms at both ends.

Usage: ``.venv/bin/python bench/bench_coordination.py --backend both --seconds 60``
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    base_parser,
    fmt,
    machine_info,
    markdown_table,
    percentile,
    pg_url,
    print_machine,
    selected_backends,
    write_json,
)
from wardwatch.capacity.schemas import SiteSpec, SystemInfo, SystemSpec, WardSpec
from wardwatch.capacity.service import BedFilter
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
WARDS, BEDS_PER_WARD, LOAD_WARDS = 20, 40, 4
RULES = """\
channels:
  bench-hook:
    type: webhook
    url: "{url}"
    secret_env: BENCH_HOOK_SECRET
    timeout_seconds: 5
    max_attempts: 3
rules:
  - name: cleaning needed
    on: [task.created]
    when: {{kind: cleaning}}
    notify: ["feed:team:{{team}}", bench-hook]
"""


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "median": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "n": len(values),
        "median": round(percentile(values, 50), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spec() -> SystemSpec:
    wards = [
        WardSpec(code=f"BN-W{i:02d}", name=f"Ward {i}", specialty="general medicine", beds=40)
        for i in range(WARDS)
    ]
    return SystemSpec(
        system=SystemInfo(code="BENCHC", name="Coordination bench"),
        sites=[SiteSpec(code="BN", name="Bench General", kind="acute", wards=wards)],
    )


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh database URL: a temporary SQLite file or a new PostgreSQL schema."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    base = pg_url()
    schema = f"bench_{secrets.token_hex(6)}"
    admin = create_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepare(url: str) -> tuple[str, list[str], list[str]]:
    """Load the system, admit a patient to every probe bed; returns (token, stays, load beds)."""
    rt = Runtime.build(Settings(database_url=url))
    try:
        rt.system.load(spec(), SYSTEM)
        beds = rt.capacity.list_beds(BedFilter(limit=100_000))
        load = [b.id for b in beds if int(b.ward[-2:]) < LOAD_WARDS]
        probe = [b for b in beds if int(b.ward[-2:]) >= LOAD_WARDS]
        stays = []
        with rt.db.transaction() as tx:
            from wardwatch.capacity.schemas import PatientIn

            for i, bed in enumerate(probe):
                stay = rt.capacity.moves.admit(
                    tx, bed.id, PatientIn(local_id=f"BENCH{i}"), SYSTEM, source="bench"
                )
                stays.append(stay.id)
        _, token = rt.auth.create_token(role="admin", name="bench")
        return token, stays, load
    finally:
        rt.close()


class Receiver:
    """A webhook receiver that notes when each notification arrives, by bed."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as any real receiver offers

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.perf_counter()
                message = json.loads(body)
                bed = (message.get("data") or {}).get("bed")
                if bed:
                    owner.arrived.setdefault(str(bed), now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class FeedClient:
    """An SSE client on the housekeeping team's live feed."""

    def __init__(self, base: str, token: str) -> None:
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        self._stop = False
        self.thread = threading.Thread(target=self._run, args=(base, token), daemon=True)
        self.thread.start()

    def _run(self, base: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        params = {"audience": "team:BN-housekeeping"}
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
            client.stream("GET", f"{base}/api/feeds/stream", params=params, headers=headers) as r,
        ):
            self.ready.set()
            for line in r.iter_lines():
                if self._stop:
                    return
                if line.startswith("data:"):
                    now = time.perf_counter()
                    data = json.loads(line[5:])
                    bed = (data.get("data") or {}).get("bed")
                    if bed:
                        self.arrived.setdefault(str(bed), now)

    def close(self) -> None:
        self._stop = True


@contextmanager
def server(url: str, rules: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        **(extra_env or {}),
        "WARDWATCH_DATABASE_URL": url,
        "WARDWATCH_NOTIFY_FILE": str(rules),
        "BENCH_HOOK_SECRET": secrets.token_hex(16),
    }
    proc = subprocess.Popen(
        [PYTHON, "-m", "wardwatch", "serve", "--port", str(port), "--mllp-port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def load(base: str, token: str, beds: list[str], rate: float, stop: Any) -> int:
    """The loop itself as background work, at ``rate`` requests per second: each load bed is
    admitted, discharged (which asks for a clean) and cleaned (one tap on its task), over
    and over. Returns the requests made; the events they wrote are counted from the log."""
    headers = {"Authorization": f"Bearer {token}"}
    done = 0
    interval = 1 / rate
    next_at = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        i = 0
        while not stop.is_set():
            bed = beds[i % len(beds)]
            i += 1
            r = client.post(
                "/api/stays",
                json={"bed_id": bed, "patient": {"local_id": f"L{secrets.token_hex(6)}"}},
            )
            steps = [r]
            if r.status_code == 201:
                stay = r.json()["id"]
                steps.append(
                    client.post(
                        f"/api/stays/{stay}/discharge", json={"destination": "home", "pathway": 0}
                    )
                )
                mine = client.get("/api/tasks", params={"bed_id": bed}).json()
                if mine:
                    steps.append(client.post(f"/api/tasks/{mine[0]['id']}/done"))
            done += len(steps)
            next_at += interval * len(steps)
            time.sleep(max(0.0, next_at - time.perf_counter()))
    return done


def load_process(
    base: str, token: str, beds: list[str], rate: float, stop: Any, done_q: Any
) -> None:
    """The background load: four threads, each on its own share of the beds."""
    workers = 4
    counts: list[int] = []
    threads = [
        threading.Thread(
            target=lambda part=part: counts.append(load(base, token, part, rate / workers, stop))
        )
        for part in (beds[w::workers] for w in range(workers))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done_q.put(sum(counts))


def last_seq(url: str) -> int:
    """The event log's latest sequence number (events written = the difference)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT max(seq) FROM event_log")).scalar() or 0)
    finally:
        engine.dispose()


def run(backend: str, args: Any) -> dict[str, Any]:
    with database(backend) as url:
        token, stays, load_beds = prepare(url)
        receiver = Receiver()
        with tempfile.TemporaryDirectory() as tmp:
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(RULES.format(url=receiver.url))
            with server(url, rules) as base:
                feed = FeedClient(base, token)
                feed.ready.wait(10)
                time.sleep(0.5)
                # The load runs in its own process, so its Python work never delays the
                # moment this process notes an arrival (one GIL here: probes and receivers).
                ctx = multiprocessing.get_context("spawn")
                stop = ctx.Event()
                done_q: Any = ctx.Queue()
                loader = ctx.Process(
                    target=load_process, args=(base, token, load_beds, args.rate, stop, done_q)
                )
                loader.start()
                sent: dict[str, float] = {}
                round_trip: list[float] = []
                headers = {"Authorization": f"Bearer {token}"}
                time.sleep(2)  # let the load settle
                seq_start = last_seq(url)
                t_start = time.perf_counter()
                with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
                    for stay in stays:
                        if time.perf_counter() - t_start > args.seconds:
                            break
                        t0 = time.perf_counter()
                        r = client.post(
                            f"/api/stays/{stay}/discharge",
                            json={"destination": "home", "pathway": 0},
                        )
                        round_trip.append((time.perf_counter() - t0) * 1000)
                        sent[r.json()["bed_code"]] = t0
                        time.sleep(max(0.0, 1 / args.probe_rate - (time.perf_counter() - t0)))
                elapsed = time.perf_counter() - t_start
                events = last_seq(url) - seq_start
                time.sleep(2)  # let the last notifications arrive
                stop.set()
                counts = [done_q.get(timeout=60)]
                loader.join(30)
                feed.close()
        receiver.close()
    sse = [(feed.arrived[b] - t) * 1000 for b, t in sent.items() if b in feed.arrived]
    hook = [(receiver.arrived[b] - t) * 1000 for b, t in sent.items() if b in receiver.arrived]
    return {
        "backend": backend,
        "probes": len(sent),
        "events_per_second": events / elapsed,
        "load_requests_per_second": sum(counts) / elapsed,
        "missing_sse": len(sent) - len(sse),
        "missing_webhook": len(sent) - len(hook),
        "discharge_round_trip_ms": stats(round_trip),
        "to_sse_ms": stats(sse),
        "to_webhook_ms": stats(hook),
    }


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--rate", type=float, default=40.0, help="background requests/s (about 2.5 events each)"
    )
    parser.add_argument("--probe-rate", type=float, default=3.0, help="discharges/s")
    args = parser.parse_args()
    info = machine_info()
    print_machine(info)
    results = []
    for backend in selected_backends(args.backend):
        result = run(backend, args)
        results.append(result)
        print(json.dumps(result, indent=2), flush=True)
    rows = []
    for r in results:
        base = r["discharge_round_trip_ms"]["median"]
        for name in ("discharge_round_trip_ms", "to_sse_ms", "to_webhook_ms"):
            t = r[name]
            rows.append(
                [
                    r["backend"],
                    name.removesuffix("_ms").replace("_", " "),
                    fmt(t["median"], 1),
                    fmt(t["p99"], 1),
                    fmt(t["median"] / base, 2),
                ]
            )
    print(markdown_table(["backend", "measure", "median ms", "p99 ms", "x round trip"], rows))
    print(
        "load: "
        + ", ".join(f"{r['backend']} {r['events_per_second']:.0f} events/s" for r in results)
    )
    write_json(args.json, {"machine": info, "results": results})


if __name__ == "__main__":
    main()
