"""Benchmark: vital-sign readings into the database with NEWS2 scoring and alerting, and the
time from a reading to its alert on a connected SSE client.

``wardwatch serve`` runs in its own process, as in production. This process:

1. **Sustained readings/s** through two HTTP doors: FHIR R4 transaction Bundles
   (``POST /fhir``, one Observation per reading) and the compact JSON payload
   (``POST /api/readings``, what the MQTT door also takes). Senders post pre-built batches
   (``--batch`` patients x 6 parameters each) from ``--senders`` threads for ``--seconds``;
   the rate is readings stored (from the answers, checked against the table) per second.
2. **Storage floor**, in the same run: PostgreSQL ``COPY`` of as many rows into a scratch
   table made ``LIKE vw_readings INCLUDING ALL`` (same columns and indexes): the rate at which
   the database alone stores the rows, with no checking, scoring or alerting.
3. **Alert latency** at half the sustained compact rate: a load process keeps that rate
   going (as gateways would: ``--load-batch`` patients' sets per request, 10 by default,
   from four threads) while probes send a deteriorating set (NEWS2 11) for a patient who
   was calm; each probe is timed from just before its request until the ``alert.raised``
   notification reaches an SSE client on the virtual-ward team's feed
   (``/api/feeds/stream``). Baseline: the probe request's own round trip.

Goals (issue 5): at least 10,000 readings/s sustained; alert p99 under 250 ms.

With ``--ingest-workers N`` the server handles FHIR Bundles in N worker processes
(:mod:`wardwatch.ingest.pool`); the compact door stays in the server process. With
``--latency-door fhir`` the latency load and the probes go as FHIR Bundles (so, with
workers, through them); a FHIR answer does not name the alert it raised, so the n-th NEWS2
alert on the feed is taken as the n-th probe's (probes go one at a time and the load is calm).

Usage: ``.venv/bin/python bench/bench_vitals.py --backend postgres --seconds 20``
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_coordination import database, server, stats
from common import (
    base_parser,
    fmt,
    machine_info,
    markdown_table,
    print_machine,
    selected_backends,
    write_json,
)
from wardwatch.capacity.schemas import PatientIn, SiteSpec, SystemInfo, SystemSpec, WardSpec
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.runtime import Runtime
from wardwatch.virtualward.schemas import DeviceIn, EnrolRequest, PlanIn

PLACES_PER_WARD = 2000
TEAM = "BV-virtual-ward"
RULES = """\
rules:
  - name: virtual-ward alert for the team
    on: [alert.raised, alert.upgraded]
    notify: ["feed:team:{team}"]
"""
#: One calm set (NEWS2 0) and one sick set (NEWS2 11), as (LOINC, value, UCUM unit).
CALM = [
    ("9279-1", 16, "/min"),
    ("59408-5", 97, "%"),
    ("8480-6", 125, "mm[Hg]"),
    ("8867-4", 72, "/min"),
    ("67775-7", "A", None),
    ("8310-5", 36.8, "Cel"),
]
SICK = [
    ("9279-1", 26, "/min"),
    ("59408-5", 90, "%"),
    ("8480-6", 99, "mm[Hg]"),
    ("8867-4", 118, "/min"),
    ("67775-7", "A", None),
    ("8310-5", 38.6, "Cel"),
]


def spec(places: int) -> SystemSpec:
    wards = [
        WardSpec(
            code=f"BV-W{i:02d}",
            name=f"Virtual ward {i}",
            specialty="frailty",
            general_acute=False,
            beds=PLACES_PER_WARD,
        )
        for i in range(-(-places // PLACES_PER_WARD))
    ]
    return SystemSpec(
        system=SystemInfo(code="BENCHV", name="Vitals bench"),
        sites=[SiteSpec(code="BV", name="Bench Virtual Wards", kind="virtual_ward", wards=wards)],
    )


def prepare(url: str, patients: int) -> dict[str, Any]:
    """Enrol ``patients`` patients with one device each; tokens for sending and reading."""
    rt = Runtime.build(Settings(database_url=url))
    try:
        rt.system.load(spec(patients), SYSTEM)
        wards = [w.code for w in spec(patients).sites[0].wards]
        for i in range(patients):
            rt.virtualward.register_device(DeviceIn(serial=f"BV-{i:05d}"), SYSTEM)
            rt.virtualward.enrol(
                EnrolRequest(
                    patient=PatientIn(local_id=f"BVP{i:05d}"),
                    ward=wards[i // PLACES_PER_WARD],
                    plan=PlanIn(mode="continuous", interval_minutes=1),
                    devices=[f"BV-{i:05d}"],
                ),
                SYSTEM,
            )
        _, sender = rt.auth.create_token(role="device", name="bench-gateway")
        _, reader = rt.auth.create_token(role="admin", name="bench-reader")
        return {"sender": sender, "reader": reader}
    finally:
        rt.close()


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def compact_body(devices: Sequence[int], at: datetime, tag: str, values: list[Any] = CALM) -> bytes:
    readings = [
        {
            "device": f"BV-{d:05d}",
            "id": f"{tag}-{d}-{code}",
            "code": code,
            "value": value,
            "at": iso(at),
            **({"unit": unit} if unit else {}),
        }
        for d in devices
        for code, value, unit in values
    ]
    return json.dumps({"readings": readings}).encode()


def fhir_body(devices: Sequence[int], at: datetime, tag: str, values: list[Any] = CALM) -> bytes:
    entries = []
    for d in devices:
        for code, value, unit in values:
            obs: dict[str, Any] = {
                "resourceType": "Observation",
                "identifier": [{"system": "urn:bench", "value": f"{tag}-{d}-{code}"}],
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"identifier": {"system": "urn:bench:patient", "value": f"BVP{d:05d}"}},
                "device": {"identifier": {"value": f"BV-{d:05d}"}},
                "effectiveDateTime": iso(at),
            }
            if unit:
                obs["valueQuantity"] = {
                    "value": value,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                }
            else:
                obs["valueString"] = value
            entries.append({"resource": obs, "request": {"method": "POST", "url": "Observation"}})
    return json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()


def bodies(kind: str, patients: int, batch: int, rounds: int) -> list[bytes]:
    """Pre-built requests: every patient's set once per round, rounds 10 ms apart from now
    (after the enrolments, and well inside the five minutes a device clock may run ahead)."""
    start = datetime.now(UTC)
    build = fhir_body if kind == "fhir" else compact_body
    return [
        build(
            range(lo, min(lo + batch, patients)),
            start + timedelta(milliseconds=10 * r),
            f"{kind}{r}",
        )
        for r in range(rounds)
        for lo in range(0, patients, batch)
    ]


def stored_in(kind: str, answer: httpx.Response) -> int:
    if answer.status_code >= 300:
        raise RuntimeError(f"{kind} batch refused: {answer.status_code} {answer.text[:500]}")
    doc = answer.json()
    if kind == "compact":
        if not doc["stored"] and doc["refused"]:
            raise RuntimeError(f"compact batch refused: {doc['refused'][0]['reason']}")
        return int(doc["stored"])
    return sum(1 for e in doc.get("entry", []) if str(e["response"]["status"]).startswith("201"))


def throughput(
    base: str, token: str, kind: str, work: list[bytes], seconds: float, senders: int
) -> dict[str, Any]:
    """Post ``work`` from ``senders`` threads until done or ``seconds`` pass."""
    path = "/fhir" if kind == "fhir" else "/api/readings"
    ctype = "application/fhir+json" if kind == "fhir" else "application/json"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": ctype}
    lock = threading.Lock()
    todo = iter(work)
    stored = [0]
    batch_ms: list[float] = []
    deadline = time.perf_counter() + seconds

    def send() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            while time.perf_counter() < deadline:
                with lock:
                    body = next(todo, None)
                if body is None:
                    return
                t0 = time.perf_counter()
                n = stored_in(kind, client.post(path, content=body))
                with lock:
                    stored[0] += n
                    batch_ms.append((time.perf_counter() - t0) * 1000)

    t_start = time.perf_counter()
    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    return {
        "door": kind,
        "readings": stored[0],
        "seconds": round(elapsed, 2),
        "per_second": round(stored[0] / elapsed),
        "batch_ms": stats(batch_ms),
    }


def copy_floor(url: str, rows: int) -> dict[str, Any]:
    """COPY ``rows`` readings-shaped rows into a scratch copy of vw_readings."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    now = datetime.now(UTC)
    data = [
        (f"copy-{i}", f"vwe_{i % 1000}", "pulse", 72.0, None, now, now, "api", f"BV-{i % 1000}")
        for i in range(rows)
    ]
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE vw_readings INCLUDING ALL)")
        conn.commit()
        t0 = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY bench_copy (key, enrolment_id, parameter, value, text_value, at,"
                " received_at, source, device) FROM STDIN"
            ) as copy,
        ):
            for row in data:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - t0
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return {"rows": rows, "seconds": round(elapsed, 2), "per_second": round(rows / elapsed)}


def count_readings(url: str) -> int:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM vw_readings")).scalar() or 0)
    finally:
        engine.dispose()


class AlertFeed:
    """An SSE client on the team's feed; notes when each alert's notification arrives."""

    def __init__(self, base: str, token: str) -> None:
        self.arrived: dict[str, float] = {}  # alert id -> when it first arrived
        self.order: list[float] = []  # arrival times of new NEWS2 alerts, in order
        self.ready = threading.Event()
        self._stop = False
        threading.Thread(target=self._run, args=(base, token), daemon=True).start()

    def _run(self, base: str, token: str) -> None:
        try:
            self._follow(base, token)
        except httpx.HTTPError:
            if not self._stop:
                raise

    def _follow(self, base: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
            client.stream(
                "GET",
                f"{base}/api/feeds/stream",
                params={"audience": f"team:{TEAM}"},
                headers=headers,
            ) as r,
        ):
            self.ready.set()
            for line in r.iter_lines():
                if self._stop:
                    return
                if line.startswith("data:"):
                    now = time.perf_counter()
                    data = json.loads(line[5:]).get("data") or {}
                    alert = data.get("alert")
                    if alert and str(alert) not in self.arrived:
                        self.arrived[str(alert)] = now
                        if data.get("kind") == "news2_high":  # not a missed reading
                            self.order.append(now)

    def close(self) -> None:
        self._stop = True


def background(
    base: str, token: str, devices: int, rate: float, batch: int, door: str, stop: Any
) -> None:
    """Calm readings at ``rate`` readings/s (own process, four sending threads)."""
    workers = 4
    threads = [
        threading.Thread(
            target=_send_calm,
            args=(base, token, range(w, devices, workers), rate / workers, batch, door, stop),
        )
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def request_for(door: str) -> tuple[str, str, Any]:
    """(path, content type, body builder) of a door."""
    if door == "fhir":
        return "/fhir", "application/fhir+json", fhir_body
    return "/api/readings", "application/json", compact_body


def _send_calm(
    base: str, token: str, devices: range, rate: float, batch: int, door: str, stop: Any
) -> None:
    path, ctype, build = request_for(door)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": ctype}
    per_request = batch * len(CALM)
    interval = per_request / rate
    next_at = time.perf_counter()
    n = 0
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        mine = list(devices)
        while not stop.is_set():
            lo = (n * batch) % len(mine)
            at = datetime.now(UTC) - timedelta(seconds=1)
            client.post(path, content=build(mine[lo : lo + batch], at, f"bg{devices.start}-{n}"))
            n += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))


def latency(
    base: str, tokens: dict[str, str], load_devices: int, probes: range, rate: float, args: Any
) -> dict[str, Any]:
    feed = AlertFeed(base, tokens["reader"])
    feed.ready.wait(10)
    time.sleep(0.5)
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    loader = ctx.Process(
        target=background,
        args=(base, tokens["sender"], load_devices, rate, args.load_batch, args.latency_door, stop),
    )
    loader.start()
    time.sleep(2)
    sent: dict[str, float] = {}  # compact door: its answer names the alert
    times: list[float] = []  # every probe's start, in order
    round_trip: list[float] = []
    path, ctype, build = request_for(args.latency_door)
    headers = {"Authorization": f"Bearer {tokens['sender']}", "Content-Type": ctype}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for d in probes:
            at = datetime.now(UTC) - timedelta(seconds=1)
            body = build(range(d, d + 1), at, f"probe{d}", SICK)
            t0 = time.perf_counter()
            answer = client.post(path, content=body)
            round_trip.append((time.perf_counter() - t0) * 1000)
            times.append(t0)
            for alert in answer.json().get("alerts", []) if args.latency_door != "fhir" else []:
                sent[alert] = t0
            time.sleep(max(0.0, 1 / args.probe_rate - (time.perf_counter() - t0)))
    time.sleep(2)
    stop.set()
    loader.join(30)
    feed.close()
    if args.latency_door == "fhir":
        # A FHIR answer does not name the alert. Probes go one at a time and only they raise
        # NEWS2 alerts (the load is calm), each published before its answer is sent, so the
        # n-th new NEWS2 alert on the feed is the n-th probe's.
        arrived = [(a - t) * 1000 for a, t in zip(feed.order, times, strict=False)]
        missing = len(times) - len(arrived)
    else:
        arrived = [(feed.arrived[a] - t) * 1000 for a, t in sent.items() if a in feed.arrived]
        missing = len(sent) - len(arrived)
    return {
        "door": args.latency_door,
        "load_readings_per_second": rate,
        "probes": len(times),
        "missing": missing,
        "probe_round_trip_ms": stats(round_trip),
        "to_sse_ms": stats(arrived),
    }


def run(backend: str, args: Any) -> dict[str, Any]:
    patients = args.patients + args.probes
    with database(backend) as url:
        tokens = prepare(url, patients)
        result: dict[str, Any] = {
            "backend": backend,
            "patients": args.patients,
            "ingest_workers": args.ingest_workers,
        }
        with tempfile.TemporaryDirectory() as tmp:
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(RULES)
            workers = {"WARDWATCH_INGEST_WORKERS": str(args.ingest_workers)}
            with server(url, rules, workers) as base:
                doors = []
                for kind in args.doors.split(","):
                    rounds = max(1, int(args.seconds * args.expect / (args.patients * 6)) + 1)
                    work = bodies(kind, args.patients, args.batch, rounds)
                    before = count_readings(url)
                    # On stderr, for anyone attaching a profiler to the server for this door.
                    print(
                        f"door {kind}: sending for {args.seconds:g} s", file=sys.stderr, flush=True
                    )
                    got = throughput(base, tokens["sender"], kind, work, args.seconds, args.senders)
                    got["checked_in_table"] = count_readings(url) - before
                    doors.append(got)
                    print(json.dumps(got), flush=True)
                result["doors"] = doors
                best = (
                    max(d["per_second"] for d in doors if d["door"] == "compact")
                    if any(d["door"] == "compact" for d in doors)
                    else doors[0]["per_second"]
                )
                probes = range(args.patients, args.patients + args.probes)
                result["latency"] = latency(base, tokens, args.patients, probes, best / 2, args)
                print(json.dumps(result["latency"]), flush=True)
        if backend == "postgres":
            result["copy_floor"] = copy_floor(url, max(d["readings"] for d in doors))
            print(json.dumps(result["copy_floor"]), flush=True)
    return result


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.set_defaults(backend="postgres")
    parser.add_argument("--seconds", type=float, default=20.0, help="per door")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=200, help="patients kept for probes")
    parser.add_argument("--batch", type=int, default=100, help="patients per request")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument(
        "--load-batch", type=int, default=10, help="patients per request in the latency load"
    )
    parser.add_argument("--doors", default="compact,fhir")
    parser.add_argument("--expect", type=float, default=15000, help="readings/s to prepare for")
    parser.add_argument("--probe-rate", type=float, default=4.0, help="probes/s")
    parser.add_argument(
        "--latency-door",
        choices=["compact", "fhir"],
        default="compact",
        help="the door the latency load and probes go through",
    )
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=0,
        help="the server's worker processes for FHIR Bundles (WARDWATCH_INGEST_WORKERS)",
    )
    args = parser.parse_args()
    info = machine_info()
    print_machine(info)
    results = [run(b, args) for b in selected_backends(args.backend)]
    rows = []
    for r in results:
        floor = r.get("copy_floor", {}).get("per_second")
        for d in r["doors"]:
            ratio = fmt(d["per_second"] / floor, 2) if floor else "-"
            rows.append([r["backend"], d["door"], fmt(d["per_second"]), ratio])
        if floor:
            rows.append([r["backend"], "COPY floor", fmt(floor), "1.00"])
    print(markdown_table(["backend", "door", "readings/s", "x COPY floor"], rows))
    rows = []
    for r in results:
        lat = r["latency"]
        base = lat["probe_round_trip_ms"]["median"]
        for name in ("probe_round_trip_ms", "to_sse_ms"):
            t = lat[name]
            rows.append(
                [
                    r["backend"],
                    f"{lat['load_readings_per_second']:.0f}",
                    name.removesuffix("_ms").replace("_", " "),
                    fmt(t["median"], 1),
                    fmt(t["p99"], 1),
                    fmt(t["median"] / base, 2),
                ]
            )
    print(
        markdown_table(
            ["backend", "load readings/s", "measure", "median ms", "p99 ms", "x round trip"], rows
        )
    )
    write_json(args.json, {"machine": info, "results": results})


if __name__ == "__main__":
    main()
