"""Benchmark: sustained readings per second from MQTT into PostgreSQL, scored and alerted on.

``--patients`` patients are enrolled on a virtual ward, each wearing a device (set up through
the services, as clinicians do it). A publisher in its own process plays the gateways: round
after round it sends every patient's six NEWS2 parameters as compact JSON messages of
``--batch`` readings, each reading naming its device, with QoS 1 to a real broker, at
``--rate`` readings/s for ``--seconds``. The default rate, 20,000/s (twice the goal), keeps
the door saturated with a backlog while the publisher itself stays light; ``--rate 0``
publishes flat out, which on a small machine mostly measures the publisher taking a CPU away
from the subscriber (and the broker dropping what exceeds its queue for a slow subscriber).
About 5% of patients are unwell (NEWS2 5), so alerts are raised and then counted as repeats.

The subscriber is the real MQTT door (``run_mqtt``'s ``MqttDoor``: batches, one transaction
each, acknowledged after commit) on its own event loop thread in this process; the main
thread only samples the database once a second, so it takes next to nothing from the door.
The rate is read from the database: ``max(id)`` of ``vw_readings`` each second; the figure
is the median of the per-second rates over the steady part (from 3 s after the start to the
end of publishing, while the door has a backlog), with the mean over that part beside it
(a batch of ~5,000 readings commits about every half second, so single seconds are lumpy).

Floor, in the same run: PostgreSQL ``COPY`` (psycopg ``cursor.copy``) of as many rows into a
scratch table shaped like ``vw_readings`` (same columns and indexes), one commit per 5,000
rows: the rate at which the database alone takes the rows, with nothing checked or scored.

Goal (issue 5): 10,000 readings/s sustained on PostgreSQL.

Usage: ``.venv/bin/python bench/bench_mqtt.py --patients 500 --seconds 25 --batch 120``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import multiprocessing
import random
import statistics
import sys
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho_mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_ACTOR,
    fmt,
    machine_info,
    markdown_table,
    percentile,
    postgres_runtime,
    print_machine,
    write_json,
)
from wardwatch.capacity.schemas import PatientIn, SiteSpec, SystemInfo, SystemSpec, WardSpec
from wardwatch.runtime import Runtime
from wardwatch.virtualward.models import Alert, Reading, Score
from wardwatch.virtualward.mqtt import MqttDoor
from wardwatch.virtualward.mqtt_broker import Broker
from wardwatch.virtualward.schemas import DeviceIn, EnrolRequest

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/bench_mqtt"
WARD_PLACES = 1000
COPY_COMMIT_ROWS = 5000
WARM_UP_SECONDS = 3.0
#: (code, unit, calm value, unwell value): NEWS2 0 and 5 (RR 22, SpO2 95, pulse 95, T 38.2).
PARAMETERS = (
    ("9279-1", "/min", 16, 22),
    ("2708-6", "%", 97, 95),
    ("8480-6", "mm[Hg]", 125, 125),
    ("8867-4", "/min", 72, 95),
    ("67775-7", None, "A", "A"),
    ("8310-5", "Cel", 36.8, 38.2),
)


def serial(n: int) -> str:
    return f"BENCH-{n:05d}"


# --- the database ----------------------------------------------------------------------------


def sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def ensure_database(url: str) -> None:
    """Create the benchmark database if it does not exist (each run uses its own schema)."""
    plain = sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
    base, _, name = plain.rpartition("/")
    name = name.split("?", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(f'CREATE DATABASE "{name}"')
        print(f"created database {name}")


def enrol_patients(rt: Runtime, patients: int) -> float:
    """A virtual-ward site with ``patients`` places, each patient wearing one device."""
    wards = [
        WardSpec(
            code=f"VWB-{w + 1:02d}",
            name=f"Virtual ward {w + 1}",
            specialty="virtual ward",
            general_acute=False,
            beds=min(WARD_PLACES, patients - w * WARD_PLACES),
        )
        for w in range((patients + WARD_PLACES - 1) // WARD_PLACES)
    ]
    rt.system.load(
        SystemSpec(
            system=SystemInfo(code="BMQ", name="MQTT bench"),
            sites=[SiteSpec(code="VWB", name="Virtual wards", kind="virtual_ward", wards=wards)],
        ),
        BENCH_ACTOR,
    )
    t0 = time.perf_counter()
    for n in range(patients):
        rt.virtualward.register_device(DeviceIn(serial=serial(n), kind="wearable"), BENCH_ACTOR)
        rt.virtualward.enrol(
            EnrolRequest(
                patient=PatientIn(local_id=f"BMQ{n:05d}"),
                ward=wards[n // WARD_PLACES].code,
                devices=[serial(n)],
            ),
            BENCH_ACTOR,
        )
    return time.perf_counter() - t0


def stored_so_far(rt: Runtime) -> int:
    """Readings stored: the newest id (cheap; nothing in this run is ever a resend)."""
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.max(Reading.id))).scalar() or 0)


def count(rt: Runtime, model: Any) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar() or 0)


def copy_floor(rt: Runtime, rows: int) -> float:
    """Rows/s PostgreSQL COPY takes into a table shaped like vw_readings (its indexes too)."""
    with rt.engine.connect() as conn:
        conn.execute(text("CREATE TABLE bench_copy (LIKE vw_readings INCLUDING ALL)"))
        conn.commit()
    raw = rt.engine.raw_connection()
    try:
        pg = raw.driver_connection
        assert isinstance(pg, psycopg.Connection)
        now = datetime.now(UTC)
        columns = "key, enrolment_id, parameter, value, text_value, at, received_at, source"
        t0 = time.perf_counter()
        done = 0
        while done < rows:
            n = min(COPY_COMMIT_ROWS, rows - done)
            with (
                pg.cursor() as cur,
                cur.copy(f"COPY bench_copy ({columns}, device) FROM STDIN") as copy,
            ):
                for i in range(done, done + n):
                    copy.write_row(
                        (
                            f"device:{serial(i % 997)}|c{i}",
                            f"vwe_{i % 997}",
                            "pulse",
                            72.0,
                            None,
                            now,
                            now,
                            "mqtt",
                            serial(i % 997),
                        )
                    )
            pg.commit()
            done += n
        return rows / (time.perf_counter() - t0)
    finally:
        raw.close()


# --- the publisher (its own process) -----------------------------------------------------------


def message(patients: range, rnd: int, at: str, unwell: set[int], rng: random.Random) -> bytes:
    readings = []
    for n in patients:
        sick = n in unwell
        for code, unit, calm, ill in PARAMETERS:
            value: Any = ill if sick else calm
            if isinstance(value, int | float) and not sick:
                value = round(value + rng.uniform(-1, 1), 1)
            item: dict[str, Any] = {
                "id": f"r{rnd}-{code}",
                "device": serial(n),
                "code": code,
                "value": value,
            }
            if unit:
                item["unit"] = unit
            readings.append(item)
    return json.dumps({"at": at, "readings": readings}).encode()


def publisher(
    url: str, prefix: str, patients: int, batch: int, seconds: float, rate: float, out: Any
) -> None:
    """Publish rounds of every patient's six readings, ``batch`` readings per message."""
    broker = Broker.parse(url)
    client = paho_mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{prefix[-8:]}")
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    client.max_inflight_messages_set(200)
    client.connect(broker.host, broker.port)
    client.loop_start()
    rng = random.Random(5)
    unwell = set(rng.sample(range(patients), max(1, patients // 20)))
    per_message = max(1, batch // len(PARAMETERS))
    groups = [range(i, min(i + per_message, patients)) for i in range(0, patients, per_message)]
    pending: deque[paho_mqtt.MQTTMessageInfo] = deque()
    sent = readings = rnd = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        rnd += 1
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for g, group in enumerate(groups):
            pending.append(
                client.publish(f"{prefix}/GW-{g}", message(group, rnd, at, unwell, rng), qos=1)
            )
            sent += 1
            readings += len(group) * len(PARAMETERS)
            while len(pending) > 400:  # bound what paho holds in memory
                pending.popleft().wait_for_publish(30)
            if rate:
                time.sleep(max(0.0, readings / rate - (time.perf_counter() - t0)))
    elapsed = time.perf_counter() - t0
    while pending:
        pending.popleft().wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    out.put({"messages": sent, "readings": readings, "seconds": elapsed, "rounds": rnd})


# --- the run -----------------------------------------------------------------------------------


class DoorThread:
    """The MQTT door on its own event loop thread."""

    def __init__(self, door: MqttDoor) -> None:
        self.door = door
        self.stop = asyncio.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(door.run(self.stop),), daemon=True
        )

    def __enter__(self) -> MqttDoor:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.door.subscribed.is_set():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the MQTT door could not subscribe at {self.door.broker}")
            time.sleep(0.05)
        return self.door

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


def forget_session(url: str, client_id: str) -> None:
    """Connect once with a clean start so the broker drops the bench's persistent session."""
    broker = Broker.parse(url)
    client = paho_mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho_mqtt.MQTTv311
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    client.connect(broker.host, broker.port)  # MQTT 3.1.1 clean session: the session goes
    client.disconnect()


def measure(rt: Runtime, args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    prefix = f"wardwatch-bench/{run}/vitals"
    client_id = f"wardwatch-bench-{run}"
    door = MqttDoor(rt, url=args.mqtt_url, topic=f"{prefix}/#", client_id=client_id)
    samples: list[tuple[float, int]] = []
    ctx = multiprocessing.get_context("spawn")
    out: Any = ctx.Queue()
    try:
        with DoorThread(door):
            start_count = stored_so_far(rt)
            pub = ctx.Process(
                target=publisher,
                args=(
                    args.mqtt_url,
                    prefix,
                    args.patients,
                    args.batch,
                    args.seconds,
                    args.rate,
                    out,
                ),
            )
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            pub.start()
            while pub.is_alive():
                samples.append((time.perf_counter() - t0, stored_so_far(rt) - start_count))
                time.sleep(1.0)
            published = out.get(timeout=30)
            pub.join(10)
            publish_end = time.perf_counter() - t0
            # Let the door drain what the broker still holds for it.
            still = 0
            while still < 3 and time.perf_counter() - t0 < publish_end + 120:
                time.sleep(1.0)
                samples.append((time.perf_counter() - t0, stored_so_far(rt) - start_count))
                still = still + 1 if samples[-1][1] == samples[-2][1] else 0
            stats = door.stats
            cpu = time.process_time() - cpu0
    finally:
        forget_session(args.mqtt_url, client_id)
    steady = [s for s in samples if WARM_UP_SECONDS <= s[0] <= publish_end]
    rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(steady)]
    mean = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if rates else 0.0
    stored = count(rt, Reading)
    return {
        "patients": args.patients,
        "readings_per_message": args.batch,
        "publisher": published,
        "published_per_second": published["readings"] / published["seconds"],
        "door": dataclasses.asdict(stats),
        "broker_dropped_messages": published["messages"] - stats.messages,
        "stored": stored,
        "scores": count(rt, Score),
        "alerts": count(rt, Alert),
        "per_second_rates": [round(r) for r in rates],
        "median_per_second": statistics.median(rates) if rates else 0.0,
        "steady_mean_per_second": mean,
        "p10_per_second": percentile(rates, 10) if rates else 0.0,
        "p90_per_second": percentile(rates, 90) if rates else 0.0,
        "mean_readings_per_batch": stored / max(1, stats.batches),
        # CPU this process (the door) spent per reading: what contention cannot change.
        "door_cpu_us_per_reading": cpu / max(1, stats.stored) * 1e6,
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [
            result["patients"],
            result["readings_per_message"],
            round(result["published_per_second"]),
            round(result["median_per_second"]),
            round(result["steady_mean_per_second"]),
            f"{fmt(result['p10_per_second'], 0)} - {fmt(result['p90_per_second'], 0)}",
            round(result["mean_readings_per_batch"]),
            round(result["door_cpu_us_per_reading"]),
            round(result["copy_floor_per_second"]),
            f"{result['median_per_second'] / result['copy_floor_per_second']:.3f}",
        ]
    ]
    return markdown_table(
        [
            "patients",
            "readings/msg",
            "published/s",
            "stored/s (median)",
            "stored/s (mean)",
            "p10 - p90",
            "readings/batch",
            "door CPU µs/reading",
            "COPY floor rows/s",
            "ratio",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=DEFAULT_DB, help="PostgreSQL (created if new)")
    parser.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--seconds", type=float, default=25.0, help="how long to publish")
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--batch", type=int, default=120, help="readings per message")
    parser.add_argument(
        "--rate", type=float, default=20_000.0, help="readings/s to publish (0: flat out)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args()
    info = machine_info()
    print_machine(info)
    print(
        "subscriber: the real MqttDoor on an event loop thread in this process; publisher: "
        "a separate process (paho-mqtt, QoS 1)"
    )
    ensure_database(args.database_url)
    with postgres_runtime(sqlalchemy_url(args.database_url)) as rt:
        took = enrol_patients(rt, args.patients)
        print(f"enrolled {args.patients} patients with a device each in {took:.1f} s", flush=True)
        result = measure(rt, args)
        result["copy_floor_per_second"] = copy_floor(rt, max(result["stored"], 50_000))
    print(json.dumps({k: v for k, v in result.items() if k != "per_second_rates"}, indent=2))
    print("per-second rates:", result["per_second_rates"])
    print("\nMarkdown for docs/PERFORMANCE.md:\n")
    print(f"### MQTT readings into PostgreSQL (`bench/bench_mqtt.py`, {info['date'][:10]})\n")
    print(
        f"{info['nproc']} CPUs ({info['cpu']}), PostgreSQL {info['postgresql']}, load average "
        f"{info['loadavg']} at the start. {args.patients} patients, {args.batch} readings per "
        f"message, published for {args.seconds:g} s at {fmt(result['published_per_second'], 0)}"
        f"/s; the door stored {fmt(result['stored'])} readings, "
        f"{fmt(result['scores'])} NEWS2 scores and {fmt(result['alerts'])} alerts"
        f" (the broker dropped {fmt(result['broker_dropped_messages'])} messages beyond its "
        "queue for a slower subscriber).\n"
    )
    print(report(result))
    # Commits come about twice a second, so single seconds are lumpy: judge on the lower of
    # the median and the mean.
    goal = min(result["median_per_second"], result["steady_mean_per_second"])
    print(
        f"\nGoal >= 10,000 readings/s on PostgreSQL: {fmt(goal, 0)}/s -> "
        f"{'met' if goal >= 10_000 else 'NOT met'}; the door spent "
        f"{result['door_cpu_us_per_reading']:.0f} µs of CPU per reading (one core: at most "
        f"{fmt(1e6 / max(1.0, result['door_cpu_us_per_reading']), 0)}/s)"
    )
    write_json(args.json, {"machine": info, "result": result})


if __name__ == "__main__":
    main()
