"""Regression tests from the review of the API, structure edits and the demo (each failed
before its fix): look-alike digits in NHS numbers, structure edits that wiped or overwrote
configuration, odd input that gave 500s, nulls in PATCH, and a demo clock that ran backwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import SMALL_SYSTEM
from wardwatch import cli
from wardwatch.app import create_app
from wardwatch.auth.roles import Role
from wardwatch.auth.service import Principal
from wardwatch.capacity.models import Site
from wardwatch.capacity.system import load_system_file
from wardwatch.core.clock import ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.demo import generator as gen_mod
from wardwatch.demo.run import demo_settings, prepare
from wardwatch.live.routes import stream
from wardwatch.runtime import Runtime

FULLWIDTH = "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19"  # 9434765919


@pytest.fixture
def c(small: Runtime) -> Iterator[TestClient]:
    """A client that sees what a real one would (a 500 stays a 500)."""
    with TestClient(create_app(small), raise_server_exceptions=False) as tc:
        yield tc


def _available(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    return list(client.get("/api/beds?ward=ACU1-AMU&state=available", headers=headers).json())


def test_look_alike_digits_are_not_an_nhs_number(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    beds = _available(client, admin)
    ok = client.post(
        "/api/stays",
        headers=admin,
        json={"bed_id": beds[0]["id"], "patient": {"nhs_number": "9434765919"}},
    )
    assert ok.status_code == 201
    twin = client.post(
        "/api/stays",
        headers=admin,
        json={"bed_id": beds[1]["id"], "patient": {"nhs_number": FULLWIDTH}},
    )
    assert twin.status_code == 422 and "0-9" in twin.json()["message"]


def test_post_ward_keeps_site_pas_facility(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    assert (
        client.patch("/api/sites/ACU1", json={"pas_facility": "RVV01"}, headers=admin).status_code
        == 200
    )
    r = client.post(
        "/api/wards",
        headers=admin,
        json={"site": "ACU1", "code": "ACU1-NEW", "name": "New", "specialty": "gm", "beds": 2},
    )
    assert r.status_code == 201
    with small.db.read() as s:
        assert s.scalar(select(Site.pas_facility).where(Site.code == "ACU1")) == "RVV01"


def test_post_site_with_existing_code_is_refused(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = client.post(
        "/api/sites", headers=admin, json={"code": "ACU1", "name": "Oops", "kind": "acute"}
    )
    assert r.status_code == 409 and "already exists" in r.json()["message"]
    assert client.get("/api/sites/ACU1", headers=admin).json()["name"] == "Acute One"


def test_reload_cannot_make_ward_single_sex_with_other_sex_inside(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    bed = _available(client, admin)[0]
    assert (
        client.post(
            "/api/stays",
            headers=admin,
            json={"bed_id": bed["id"], "patient": {"local_id": "H1", "sex": "female"}},
        ).status_code
        == 201
    )
    spec = load_system_file(SMALL_SYSTEM).model_dump()
    spec["sites"][0]["wards"][0]["sex_policy"] = "male"
    r = client.put("/api/system", json=spec, headers=admin)
    assert r.status_code == 409 and "not male" in r.json()["message"]
    assert client.get("/api/wards/ACU1-AMU", headers=admin).json()["sex_policy"] == "mixed"


def test_patch_required_field_null_is_422_not_conflict(
    small: Runtime, client: TestClient, admin: dict[str, str]
) -> None:
    r = client.patch("/api/wards/ACU1-AMU", json={"name": None}, headers=admin)
    assert r.status_code == 422 and "cannot be null" in r.json()["message"]
    r = client.patch("/api/sites/ACU1", json={"name": None}, headers=admin)
    assert r.status_code == 422
    r = client.patch("/api/sites/ACU1", json={"lat": None}, headers=admin)
    assert r.status_code == 200  # optional fields may be cleared


@pytest.mark.parametrize(
    "url",
    [
        "/api/sitrep?date=0001-01-01",
        "/api/sitrep?date=0001-01-01&format=csv",
        "/api/occupancy?at=0001-01-01T00:00:00%2B05:00",
        "/api/occupancy/history?from=0001-01-01T00:00:00%2B05:00&to=0001-01-01T05:00:00%2B05:00",
        "/api/events?after=99999999999999999999",
        "/api/beds/bed_%00",
        "/api/beds?code=%00",
    ],
)
def test_odd_input_is_4xx_not_500(c: TestClient, admin: dict[str, str], url: str) -> None:
    r = c.get(url, headers=admin)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])


def test_control_characters_in_identifiers_are_refused(
    c: TestClient, admin: dict[str, str]
) -> None:
    bed = _available(c, admin)[0]
    for patient in ({"local_id": "H1\x00"}, {"local_id": "   "}):
        r = c.post("/api/stays", headers=admin, json={"bed_id": bed["id"], "patient": patient})
        assert r.status_code == 422, (patient, r.status_code, r.text)


def test_last_event_id_with_a_look_alike_digit_is_ignored(small: Runtime) -> None:
    async def call() -> int:
        resp = await stream(
            request=None,
            rt=small,  # type: ignore[arg-type]
            who=Principal("tok_x", "t", Role.ADMIN),
            last_event_id="\xb2",
        )
        await resp.body_iterator.aclose()  # type: ignore[attr-defined]
        return resp.status_code

    assert asyncio.run(call()) == 200


def test_demo_keep_does_not_rewind_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "demo"
    ahead = datetime.now(UTC) + timedelta(hours=120)  # an earlier run at x60 got this far
    prepare(data_dir, ManualClock(ahead), system_file=SMALL_SYSTEM)
    captured: dict[str, Any] = {}
    monkeypatch.setattr(
        gen_mod.DemoGenerator,
        "start",
        lambda self, tick_seconds=1.0: captured.setdefault("clock", self.clock),
    )
    monkeypatch.setattr(gen_mod.DemoGenerator, "stop", lambda self: None)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    result = CliRunner().invoke(cli.app, ["demo", "--keep", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    rt = Runtime.build(demo_settings(data_dir), clock=ManualClock(ahead))
    with rt.db.read() as s:
        last = s.scalar(select(func.max(EventRecord.at)))
    rt.close()
    assert last is not None and captured["clock"].now() >= last
