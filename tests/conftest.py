"""Shared fixtures: every service test runs on SQLite and on PostgreSQL.

PostgreSQL tests need ``WARDWATCH_TEST_POSTGRES_URL`` (CI sets it). Without it they are
skipped with a message saying so; with it, a database that cannot be reached is a failure,
never a skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from wardwatch.app import create_app
from wardwatch.capacity import counts
from wardwatch.capacity.system import load_system_file
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.db import migrate
from wardwatch.db.session import make_engine
from wardwatch.models import Base
from wardwatch.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = Path(__file__).parent / "payloads"
SMALL_SYSTEM = PAYLOADS / "small-system.yaml"
FRONT_DOOR_SYSTEM = Path(__file__).parent / "payloads" / "front-door-system.yaml"
EXAMPLE_SYSTEM = ROOT / "examples" / "kent-medway.yaml"
START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
PG_ENV = "WARDWATCH_TEST_POSTGRES_URL"
MQTT_ENV = "WARDWATCH_TEST_MQTT_URL"
REQUIRE_ALL = os.environ.get("WARDWATCH_TEST_REQUIRE_ALL") == "1"


def skip_or_fail(message: str) -> None:
    """Skip for a missing service, but fail in CI (WARDWATCH_TEST_REQUIRE_ALL=1)."""
    if REQUIRE_ALL:
        pytest.fail(f"{message} (WARDWATCH_TEST_REQUIRE_ALL=1: skipping is a failure here)")
    pytest.skip(message)


def postgres_url() -> str | None:
    return Settings(database_url=os.environ.get(PG_ENV) or None).database_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "wardwatch.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@contextmanager
def own_schema(url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL schema, dropped afterwards, by URL: every connection to that URL
    (from this process or one a test starts, such as an ingest worker) sees only its tables."""
    schema = f"{prefix}_{secrets.token_hex(4)}"
    admin = make_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in url else "?"
            yield f"{url}{sep}options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def sqlite_copy(template: Path, path: Path) -> Engine:
    """An engine on a copy of a migrated SQLite file (faster than migrating again)."""
    shutil.copy(template, path)
    return make_engine(f"sqlite:///{path}")


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """The URL of a PostgreSQL schema of this test session's own (dropped at the end), as a
    process started by a test (an ingest worker) would connect to it."""
    url = postgres_url()
    if url is None:
        skip_or_fail(
            f"PostgreSQL tests skipped: set {PG_ENV}=postgresql://user@host/db to run them"
        )
        return
    with ExitStack() as stack:
        try:
            schema_url = stack.enter_context(own_schema(url, "ww_test"))
        except Exception as exc:  # a configured database must be reachable: fail, never skip
            pytest.fail(f"{PG_ENV} is set but PostgreSQL is not usable: {exc}")
        yield schema_url


@pytest.fixture(scope="session")
def postgres_engine(postgres_schema_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_schema_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def pg_url(postgres_schema_url: str, postgres_engine: Engine) -> str:
    """The test session's PostgreSQL schema, emptied, by URL: worker processes connect by URL."""
    truncate_all(postgres_engine)
    return postgres_schema_url


@pytest.fixture
def prt(pg_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A Runtime on that schema, with the small system and two ingest workers configured."""
    settings = Settings(
        database_url=pg_url, data_dir=tmp_path, ingest_workers=2, sse_heartbeat_seconds=0.2
    )
    rt = Runtime.build(settings, migrate_db=False)
    rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """The MQTT broker tests publish to (``WARDWATCH_TEST_MQTT_URL``, e.g.
    mqtt://127.0.0.1:1883); a configured broker that does not answer fails the tests."""
    url = os.environ.get(MQTT_ENV)
    if not url:
        skip_or_fail(f"MQTT tests skipped: set {MQTT_ENV}=mqtt://host:port to run them")
    return str(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if backend == "sqlite":
        eng = sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "wardwatch.db")
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("postgres_engine")
        truncate_all(eng)
        yield eng


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def rt(engine: Engine, clock: ManualClock, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(settings=Settings(data_dir=tmp_path), clock=clock, engine=engine)
    yield runtime
    # Whatever the test did, the kept bed counters must still agree with the beds.
    with runtime.db.read() as s:
        assert counts.drift(s) == {}, "ward_state_counts drifted from the beds"


@pytest.fixture
def small(rt: Runtime) -> Runtime:
    """The runtime with the small test system loaded."""
    rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    return rt


#: When the shared prepared demo opens (a Monday in January, GMT).
DEMO_OPENED = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo as ``./scripts/demo`` prepares it (built once: ~40 s). Tests that change
    it work on a copy (``copy_demo``)."""
    from wardwatch.demo.run import prepare

    path = tmp_path_factory.mktemp("demo")
    prepare(path, ManualClock(DEMO_OPENED))
    return path


def copy_demo(demo_dir: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    (into / "wardwatch.db").write_bytes((demo_dir / "wardwatch.db").read_bytes())
    return into


@pytest.fixture
def fd(rt: Runtime) -> Runtime:
    """The runtime with three acute front doors (BUSY, NEAR, FAR) and a community site."""
    rt.system.load(load_system_file(FRONT_DOOR_SYSTEM), SYSTEM)
    return rt


@pytest.fixture
def api(rt: Runtime) -> TestClient:
    """A client of the app without its lifespan, so no periodic check (escalations, delay
    alerts, OPEL) runs in the background against a clock the test is moving."""
    return TestClient(create_app(rt))


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as c:
        yield c


def auth(rt: Runtime, role: str = "admin", name: str = "tester") -> dict[str, str]:
    """Headers with a fresh token of ``role``."""
    _, token = rt.auth.create_token(role=role, name=f"{name}-{role}")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(rt: Runtime) -> dict[str, str]:
    return auth(rt, "admin")
