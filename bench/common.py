"""Shared helpers for the WardWatch benchmarks (scripts, not tests: nothing here asserts time).

- :func:`open_runtime` builds a :class:`~wardwatch.runtime.Runtime` on SQLite (a temporary
  directory) or on PostgreSQL (a fresh ``bench_<random>`` schema, dropped afterwards);
- :func:`national_spec` generates a synthetic national-size system (200 sites, 100,000 beds);
- :func:`set_bed_states` puts most beds into occupied-equivalent states with bulk SQL;
- :func:`time_calls` times a callable over N runs and returns median / p95 / min / max;
- :func:`markdown_table`, :func:`machine_info` and :func:`write_json` format the results.

Run the scripts from the repository root with the project's venv, e.g.
``.venv/bin/python bench/bench_snapshot.py --backend both``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import Engine, create_engine, insert, literal, select, text, update
from sqlalchemy.pool import NullPool

import wardwatch
from wardwatch.app import create_app
from wardwatch.capacity import counts as bed_counts
from wardwatch.capacity.models import Bed, Ward
from wardwatch.capacity.schemas import SystemSpec
from wardwatch.capacity.states import BedState
from wardwatch.config import Settings
from wardwatch.core.actor import Actor
from wardwatch.core.clock import SystemClock
from wardwatch.db import migrate
from wardwatch.db.base import UTCDateTime
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import make_engine
from wardwatch.runtime import Runtime

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")
BENCH_ACTOR = Actor(name="bench", role="system")


# --- backends ------------------------------------------------------------------------------


def pg_url() -> str:
    """The PostgreSQL URL from ``WARDWATCH_BENCH_POSTGRES_URL`` (psycopg 3 driver)."""
    url = os.environ.get("WARDWATCH_BENCH_POSTGRES_URL", DEFAULT_PG_URL)
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def pg_problem(url: str | None = None) -> str | None:
    """Why PostgreSQL cannot be used, or None if it answers."""
    engine = create_engine(url or pg_url(), poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "skip PostgreSQL"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    return None


def selected_backends(choice: str) -> list[str]:
    """The backends to run for ``--backend``, skipping PostgreSQL (with a message) if down."""
    wanted = list(BACKENDS) if choice == "both" else [choice]
    if "postgres" in wanted:
        problem = pg_problem()
        if problem:
            print(f"SKIP postgres: cannot reach {pg_url()} ({problem})")
            wanted.remove("postgres")
    return wanted


@contextmanager
def open_runtime(backend: str) -> Iterator[Runtime]:
    """A migrated Runtime on an empty database, torn down afterwards."""
    if backend == "sqlite":
        with sqlite_runtime() as rt:
            yield rt
    elif backend == "postgres":
        with postgres_runtime() as rt:
            yield rt
    else:
        raise ValueError(f"unknown backend {backend!r}")


@contextmanager
def sqlite_runtime() -> Iterator[Runtime]:
    with tempfile.TemporaryDirectory(prefix="wardwatch-bench-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            migrate.upgrade(engine)
            yield Runtime(settings=Settings(), clock=SystemClock(), engine=engine)
        finally:
            engine.dispose()


@contextmanager
def postgres_runtime(url: str | None = None) -> Iterator[Runtime]:
    url = url or pg_url()
    schema = f"bench_{secrets.token_hex(6)}"
    admin = create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    # The same schema by URL, for worker processes (ingest workers) that connect themselves.
    sep = "&" if "?" in url else "?"
    settings = Settings(database_url=f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        migrate.upgrade(engine)
        yield Runtime(settings=settings, clock=SystemClock(), engine=engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def analyze(engine: Engine) -> None:
    """Refresh planner statistics after bulk loading.

    PostgreSQL: ``VACUUM ANALYZE`` (ANALYZE plus the visibility map, so index-only scans work
    and autovacuum does not wake up in the middle of the timed runs); SQLite: ``ANALYZE``.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


# --- a synthetic national system -----------------------------------------------------------

_SPECIALTIES = (
    "acute medicine",
    "general medicine",
    "elderly care",
    "general surgery",
    "trauma and orthopaedics",
    "cardiology",
    "respiratory medicine",
    "stroke",
    "gastroenterology",
    "urology",
)


def _split(total: int, parts: int, rng: random.Random, spread: float = 0.3) -> list[int]:
    """``total`` split into ``parts`` non-negative integers of roughly equal size (+/-spread)."""
    if parts <= 0:
        return []
    weights = [1 + rng.uniform(-spread, spread) for _ in range(parts)]
    scale = total / sum(weights)
    out = [int(w * scale) for w in weights]
    for i in range(total - sum(out)):
        out[i % parts] += 1
    return out


def national_spec(
    beds: int = 100_000, sites: int = 200, wards_per_site: int = 10, seed: int = 2026
) -> SystemSpec:
    """A synthetic national system: ``sites`` sites of ``wards_per_site`` wards, ``beds`` beds.

    The default is 200 sites x 10 wards x ~50 beds = 100,000 beds. Most sites are acute; a
    few are community hospitals, care homes and virtual wards. Each acute site has a
    critical care unit (not G&A), a paediatric G&A ward, a maternity ward (not G&A), an
    escalation ward with unstaffed (closed) beds, and core adult G&A wards.
    """
    rng = random.Random(seed)
    sites = max(1, min(sites, beds))
    per_site = _split(beds, sites, rng, spread=0.2)
    kinds = ["acute"] * sites
    for i in range(sites):  # ~5% community, ~2.5% care homes, ~2.5% virtual wards
        if i % 40 == 39:
            kinds[i] = "virtual_ward"
        elif i % 40 == 19:
            kinds[i] = "care_home"
        elif i % 20 == 9:
            kinds[i] = "community"
    out_sites: list[dict[str, Any]] = []
    for i in range(sites):
        code = f"S{i + 1:03d}"
        kind = kinds[i]
        ward_beds = _split(per_site[i], wards_per_site, rng)
        wards = []
        for j, n in enumerate(ward_beds):
            ward: dict[str, Any] = {
                "code": f"{code}-W{j + 1:02d}",
                "name": f"Ward {j + 1}",
                "specialty": _SPECIALTIES[(i + j) % len(_SPECIALTIES)],
                "kind": "core",
                "age_group": "adult",
                "general_acute": True,
                "beds": n,
                "side_rooms": n // 10,
            }
            if kind == "acute":
                if j == 0:
                    ward.update(specialty="critical care", general_acute=False, name="ICU")
                elif j == 1:
                    ward.update(specialty="paediatrics", age_group="paediatric", name="Children")
                elif j == 2:
                    ward.update(specialty="maternity", general_acute=False, name="Maternity")
                elif j == wards_per_site - 1:
                    ward.update(kind="escalation", name="Escalation", staffed_beds=n * 3 // 4)
            elif kind == "community":
                ward.update(specialty="rehabilitation", general_acute=False)
            elif kind == "care_home":
                ward.update(specialty="intermediate care", general_acute=False)
            else:
                ward.update(specialty="virtual ward", general_acute=False, side_rooms=0)
            wards.append(ward)
        out_sites.append(
            {
                "code": code,
                "name": f"Site {i + 1}",
                "kind": kind,
                "lat": round(rng.uniform(50.1, 55.8), 4),
                "lon": round(rng.uniform(-5.5, 1.7), 4),
                "wards": wards,
            }
        )
    return SystemSpec.model_validate(
        {
            "system": {
                "code": "NAT",
                "name": "Synthetic national system",
                "occupancy_target": 0.92,
            },
            "sites": out_sites,
        }
    )


def load_system(rt: Runtime, spec: SystemSpec) -> float:
    """Load ``spec`` through the service (as `wardwatch system load` does); seconds taken."""
    t0 = time.perf_counter()
    rt.system.load(spec, BENCH_ACTOR)
    return time.perf_counter() - t0


#: Share of non-closed beds put into each state by :func:`set_bed_states` (rest: available).
STATE_MIX: dict[BedState, float] = {
    BedState.OCCUPIED: 0.93,
    BedState.AWAITING_CLEAN: 0.015,
    BedState.CLEANING: 0.01,
    BedState.RESERVED: 0.01,
    BedState.BLOCKED: 0.01,
}


def set_bed_states(rt: Runtime, *, seed: int = 7, with_events: bool = True) -> dict[str, int]:
    """Put ~93% of available beds into ``occupied`` (a few into other states) by bulk SQL.

    This bypasses the service (no stays, no per-bed transactions): it is benchmark set-up
    only. With ``with_events`` it also appends one ``bench.bulk_state`` event per changed bed,
    (one ``INSERT ... SELECT``) so the event log agrees with the beds table and point-in-time
    snapshots replay it.
    Returns how many beds went into each state.
    """
    rng = random.Random(seed)
    beds_t = Bed.metadata.tables["beds"]
    with rt.engine.connect() as conn:
        rows = list(
            conn.execute(
                select(Bed.id).where(Bed.state == BedState.AVAILABLE.value).order_by(Bed.id)
            ).scalars()
        )
    rng.shuffle(rows)
    plan: dict[BedState, list[str]] = {}
    start = 0
    for state, share in STATE_MIX.items():
        n = round(len(rows) * share)
        plan[state] = rows[start : start + n]
        start += n
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    with rt.engine.begin() as conn:
        for state, chosen in plan.items():
            counts[state.value] = len(chosen)
            ids = chosen
            for i in range(0, len(ids), 5000):
                conn.execute(
                    update(beds_t)
                    .where(beds_t.c.id.in_(ids[i : i + 5000]))
                    .values(
                        state=state.value,
                        state_since=now,
                        version=beds_t.c.version + 1,
                        state_reason="bench" if state == BedState.BLOCKED else None,
                    )
                )
        if with_events:
            # One INSERT ... SELECT: every bed stamped with this ``now`` was available.
            events_t = EventRecord.metadata.tables["event_log"]
            changed = (
                select(
                    literal(now, UTCDateTime()),
                    literal("bench.bulk_state"),
                    literal(BENCH_ACTOR.label),
                    Ward.site_id,
                    Bed.ward_id,
                    Bed.id,
                    literal(BedState.AVAILABLE.value),
                    Bed.state,
                )
                .join(Ward, Bed.ward_id == Ward.id)
                .where(Bed.state_since == now)
                .order_by(Bed.id)
            )
            conn.execute(
                insert(events_t).from_select(
                    [
                        events_t.c.at,
                        events_t.c.type,
                        events_t.c.actor,
                        events_t.c.site_id,
                        events_t.c.ward_id,
                        events_t.c.bed_id,
                        events_t.c.from_state,
                        events_t.c.to_state,
                    ],
                    changed,
                )
            )
    counts[BedState.AVAILABLE.value] = len(rows) - start
    # The bulk UPDATE bypassed the services: rebuild the kept per-ward counters from the beds.
    with rt.db.transaction() as tx:
        bed_counts.recount(tx.session)
    return counts


# --- an HTTP server -----------------------------------------------------------------------


@contextmanager
def serve(rt: Runtime) -> Iterator[str]:
    """A real uvicorn server for ``create_app(rt)`` on a free local port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(rt), log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


# --- timing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall-clock times of N calls, in milliseconds."""

    runs: int
    median_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarise(samples_ms: Sequence[float]) -> Timing:
    return Timing(
        runs=len(samples_ms),
        median_ms=statistics.median(samples_ms),
        p95_ms=percentile(samples_ms, 95),
        min_ms=min(samples_ms),
        max_ms=max(samples_ms),
        mean_ms=statistics.fmean(samples_ms),
    )


def time_calls(fn: Callable[[], object], *, runs: int, warmup: int = 0) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times timed one by one."""
    return time_interleaved({"fn": fn}, runs=runs, warmup=warmup)["fn"]


def time_interleaved(
    cases: Mapping[str, Callable[[], object]], *, runs: int, warmup: int = 0
) -> dict[str, Timing]:
    """Time several callables round-robin (one call of each per round).

    On a noisy machine a burst of background load then hits every case alike instead of
    whichever case happened to be running, so ratios between cases stay meaningful.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            t0 = time.perf_counter_ns()
            fn()
            samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    return {name: summarise(values) for name, values in samples.items()}


# --- output --------------------------------------------------------------------------------


def fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table: text left-aligned, numbers right-aligned."""
    cells = [[fmt(c) for c in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in rows) if rows else False
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if num else "-" * (w + 2)
            for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(list(headers)), rule, *(line(r) for r in cells)])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _loadavg() -> str | None:
    """1, 5 and 15 minute load averages: how busy the machine was (other work included)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return None


def postgres_version() -> str | None:
    if pg_problem():
        return None
    engine = create_engine(pg_url(), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()


def source_commit() -> str | None:
    """The commit of the wardwatch code being measured (``+dirty`` if its tree has edits).

    Taken from git where the imported package lives; for an exported tree outside git, set
    ``WARDWATCH_BENCH_SOURCE_COMMIT``.
    """
    if os.environ.get("WARDWATCH_BENCH_SOURCE_COMMIT"):
        return os.environ["WARDWATCH_BENCH_SOURCE_COMMIT"]
    src = str(Path(wardwatch.__file__).parent)

    def git(*cmd: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", src, *cmd], capture_output=True, text=True, check=False
            )
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    dirty = git("status", "--porcelain", "--", ".")
    return f"{head}+dirty" if dirty else head


def host_speed_s() -> float:
    """Seconds for a bare 10-million-step Python loop (median of 3): a yardstick of the host.

    Machines of the same kind differ: rates measured on two hosts of the same kind, same
    code, differed about twofold. Recorded so results from different sessions can be
    compared, or seen not to be comparable.
    """
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(10_000_000):
            pass
        runs.append(time.perf_counter() - start)
    return round(statistics.median(runs), 3)


def machine_info() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory": _mem_total(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(),
        "platform": platform.platform(),
        "loadavg": _loadavg(),
        "python_loop_10m_s": host_speed_s(),
        "wardwatch_source": str(Path(wardwatch.__file__).parent),
        "git": source_commit(),
    }


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM; "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}; "
        f"{info['date']} (git {info['git']}); load average {info['loadavg']}; "
        f"10M-step Python loop {info['python_loop_10m_s']} s; "
        f"wardwatch from {info['wardwatch_source']}"
    )


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {path}")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return parser
