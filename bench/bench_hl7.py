"""Benchmark: HL7 v2 ADT messages per second end to end, ACK after commit.

A real MLLP listener (the one ``wardwatch serve`` starts) on loopback; clients send framed
ADT messages and wait for each ACK before sending the next, as interface engines do. Each
connection works its own ward through a realistic cycle -- A01 admit, A02 transfer, A03
discharge, then A20 "U" for both beds once cleaned -- so every message really changes the
board. Measured over 1 and 8 connections on SQLite and PostgreSQL, beside the rate at which
python-hl7 alone parses the same messages (the parsing floor) in the same run.

Goal (from the issue): at least 2,000 messages/s on PostgreSQL.

With ``--ingest-workers N`` (PostgreSQL only) the listener hands its group-commit batches to
N worker processes (:mod:`wardwatch.ingest.pool`), as ``wardwatch serve --ingest-workers N``
does.

With ``--in-process`` there is no listener: ``Hl7Service.handle_batch`` is timed directly
(batches of one message per connection), with the process's CPU a message and its SQL
statements counted by kind.

Usage: ``.venv/bin/python bench/bench_hl7.py --backend both --messages 2000``
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hl7
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    base_parser,
    fmt,
    load_system,
    machine_info,
    markdown_table,
    open_runtime,
    print_machine,
    selected_backends,
    write_json,
)
from wardwatch.capacity.schemas import SiteSpec, SystemInfo, SystemSpec, WardSpec
from wardwatch.ingest.hl7v2.mllp import MllpServer
from wardwatch.ingest.pool import IngestPool
from wardwatch.runtime import Runtime

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
TS = "{TS}"


def stamp(raw: bytes) -> bytes:
    """Put the current time into a message's timestamps (MSH-7, EVN-2)."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S.%f+0000").encode()
    return raw.replace(TS.encode(), now)


BEDS_PER_WARD = 40


def spec(connections: int) -> SystemSpec:
    wards = [
        WardSpec(
            code=f"B-W{i:02d}", name=f"Ward {i}", specialty="general medicine", beds=BEDS_PER_WARD
        )
        for i in range(connections)
    ]
    return SystemSpec(
        system=SystemInfo(code="BENCH", name="HL7 bench"),
        sites=[SiteSpec(code="B", name="Bench Hospital", kind="acute", wards=wards)],
    )


def messages(conn: int, count: int, run: str) -> Iterator[bytes]:
    """An endless realistic cycle for one ward, cut at ``count`` messages."""
    ward = f"B-W{conn:02d}"
    sent = 0
    patient = 0
    while True:
        patient += 1
        a, b = (patient * 2) % BEDS_PER_WARD + 1, (patient * 2 + 1) % BEDS_PER_WARD + 1
        pid = f"PID|1||{run}-{conn}-{patient}^^^B^MR||Bench^Patient||19500101|U"
        for trigger, bed, extra in (
            ("A01", a, ""),
            ("A02", b, ""),
            ("A03", b, ""),
            ("A20", a, "U"),
            ("A20", b, "U"),
        ):
            sent += 1
            ts = TS  # filled in when sent: each event happens as it is sent
            cid = f"{run}-{conn}-{sent}"
            head = (
                f"MSH|^~\\&|PAS|B|WARDWATCH|B|{ts}||ADT^{trigger}^ADT_{trigger}|{cid}|P|2.5.1\r"
                f"EVN|{trigger}|{ts}\r"
            )
            if trigger == "A20":
                body = f"NPU|{ward}^^{bed}^B|{extra}\r"
            else:
                body = f"{pid}\rPV1|1|I|{ward}^^{bed}^B\r"
            yield (head + body).encode()
            if sent >= count:
                return


class Listener:
    """The MLLP server on its own event loop thread (batches in ``workers`` processes if set)."""

    def __init__(self, rt: Runtime, workers: int = 0) -> None:
        self.pool = IngestPool(rt, workers) if workers else None
        self.server = MllpServer(
            rt.hl7,
            host="127.0.0.1",
            port=0,
            apply_batch=self.pool.hl7_batch if self.pool else None,
            lanes=workers or 1,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        if self.pool is not None:
            asyncio.run_coroutine_threadsafe(self.pool.start(), self.loop).result(60)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server.port

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        if self.pool is not None:
            self.pool.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def client(port: int, msgs: list[bytes], acks: list[str], latencies: list[float]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for raw in msgs:
            framed = SB + stamp(raw) + EB + CR
            t0 = time.perf_counter()
            sock.sendall(framed)
            data = b""
            while not data.endswith(EB + CR):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                data += chunk
            latencies.append((time.perf_counter() - t0) * 1000)
            acks.append(data.split(b"MSA|", 1)[1][:2].decode())


def end_to_end(
    rt: Runtime, connections: int, per_conn: int, run: str, workers: int = 0
) -> dict[str, Any]:
    batches = [list(messages(c, per_conn, run)) for c in range(connections)]
    acks: list[list[str]] = [[] for _ in range(connections)]
    lat: list[list[float]] = [[] for _ in range(connections)]
    with Listener(rt, workers) as port:
        threads = [
            threading.Thread(target=client, args=(port, batches[c], acks[c], lat[c]))
            for c in range(connections)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    flat = [a for group in acks for a in group]
    all_lat = sorted(x for group in lat for x in group)
    return {
        "connections": connections,
        "messages": len(flat),
        "seconds": round(elapsed, 3),
        "per_second": len(flat) / elapsed,
        "aa": flat.count("AA"),
        "not_aa": len(flat) - flat.count("AA"),
        "ack_median_ms": all_lat[len(all_lat) // 2],
        "ack_p99_ms": all_lat[int(len(all_lat) * 0.99) - 1],
    }


def in_process(rt: Runtime, connections: int, per_conn: int, run: str) -> dict[str, Any]:
    """``Hl7Service.handle_batch`` called directly with one message of each connection a
    batch (what the listener hands it under load): messages/s and SQL statements a message,
    by kind. No socket, no threads: where the time of the apply path goes."""
    streams = [list(messages(c, per_conn, run)) for c in range(connections)]
    kinds: Counter[str] = Counter()

    def count(*args: Any) -> None:
        statement = " ".join(str(args[2]).split())
        kinds[re.sub(r"[(%:].*", "", statement)[:60].strip()] += 1

    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        for batch in zip(*streams, strict=True):
            answers = rt.hl7.handle_batch([(stamp(raw), "bench") for raw in batch])
            assert all(a.ack_code == "AA" for a in answers), [a.detail for a in answers]
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)
    n = connections * per_conn
    return {
        "connections": connections,
        "messages": n,
        "per_second": n / elapsed,
        "cpu_ms_per_message": cpu * 1000 / n,
        "statements_per_message": sum(kinds.values()) / n,
        "top": [(k, round(v / n, 2)) for k, v in kinds.most_common(12)],
    }


def bench_in_process(backend: str, args: Any) -> None:
    for connections in (1, 8):
        with open_runtime(backend) as rt:
            load_system(rt, spec(connections))
            per_conn = max(5, args.messages // connections)
            in_process(rt, connections, 10, "warm")
            got = in_process(rt, connections, per_conn, "run")
            print(
                f"[{backend}] in process, batches of {connections}: "
                f"{got['per_second']:.0f} msg/s, "
                f"{got['cpu_ms_per_message']:.2f} ms of this process's CPU a message, "
                f"{got['statements_per_message']:.1f} statements a message"
            )
            for kind, per in got["top"]:
                print(f"    {per:5.2f}  {kind}")


def parse_floor(sample: list[bytes], seconds: float = 2.0) -> float:
    """Messages per second python-hl7 alone parses (decode + split + parse)."""
    texts = [stamp(m).decode() for m in sample]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for text in texts:
            hl7.parse(text)
        n += len(texts)
    return n / (time.perf_counter() - t0)


def bench_backend(backend: str, args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "runs": []}
    sample = list(messages(0, 500, "floor"))
    out["parse_floor_per_second"] = parse_floor(sample)
    for connections in (1, 8):
        with open_runtime(backend) as rt:
            load_system(rt, spec(connections))
            per_conn = max(5, args.messages // connections)
            # A short warm-up on the same board (its own patients), then the timed run.
            workers = args.ingest_workers if backend == "postgres" else 0
            end_to_end(rt, connections, 25, "warm", workers)
            result = end_to_end(rt, connections, per_conn, "run", workers)
            result["ingest_workers"] = workers
            result["parse_floor_per_second"] = parse_floor(sample, seconds=1.0)
            out["runs"].append(result)
            print(
                f"[{backend}] {connections} connection(s): {result['per_second']:.0f} msg/s, "
                f"{result['not_aa']} not AA; parse floor "
                f"{result['parse_floor_per_second']:.0f}/s",
                flush=True,
            )
    return out


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for res in results:
        for run in res["runs"]:
            rows.append(
                [
                    res["backend"],
                    run.get("ingest_workers", 0),
                    run["connections"],
                    run["messages"],
                    round(run["per_second"]),
                    round(run["parse_floor_per_second"]),
                    f"{run['per_second'] / run['parse_floor_per_second']:.3f}",
                    round(run["ack_median_ms"], 2),
                    round(run["ack_p99_ms"], 2),
                    run["not_aa"],
                ]
            )
    return markdown_table(
        [
            "backend",
            "ingest workers",
            "connections",
            "messages",
            "msg/s (ACK after commit)",
            "python-hl7 parse only /s",
            "ratio",
            "ACK median ms",
            "ACK p99 ms",
            "not AA",
        ],
        rows,
    )


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--messages",
        type=int,
        default=2000,
        help="messages per configuration (split over the connections)",
    )
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=0,
        help="apply the batches in N worker processes (PostgreSQL only; 0: in the listener)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="no listener: time Hl7Service.handle_batch directly and count its SQL statements",
    )
    args = parser.parse_args()
    info = machine_info()
    print_machine(info)
    if args.in_process:
        for backend in selected_backends(args.backend):
            bench_in_process(backend, args)
        return
    results = [bench_backend(b, args) for b in selected_backends(args.backend)]
    print()
    print(report(results))
    goal = [r for r in results if r["backend"] == "postgres"]
    if goal:
        best = max(run["per_second"] for run in goal[0]["runs"])
        print(
            f"\nGoal >= 2,000 msg/s on PostgreSQL: best {fmt(best, 0)} msg/s -> "
            f"{'met' if best >= 2000 else 'NOT met'}"
        )
    write_json(args.json, {"machine": info, "results": results})


if __name__ == "__main__":
    main()
