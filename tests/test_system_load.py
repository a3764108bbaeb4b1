"""Loading the health system from YAML: through the CLI and the API, good and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_SYSTEM, SMALL_SYSTEM, auth
from wardwatch.capacity.models import Bed
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.system import load_system_file, validate_system
from wardwatch.cli import app as cli
from wardwatch.core.actor import SYSTEM
from wardwatch.core.errors import ValidationFailed
from wardwatch.db.eventlog import EventRecord
from wardwatch.runtime import Runtime


def _bed_count(rt: Runtime) -> int:
    with rt.db.read() as s:
        return int(s.execute(select(func.count()).select_from(Bed)).scalar_one())


def test_example_system_is_realistic() -> None:
    spec = load_system_file(EXAMPLE_SYSTEM)
    kinds = [s.kind for s in spec.sites]
    acute = [sum(w.beds for w in s.wards) for s in spec.sites if s.kind == "acute"]
    assert len(acute) >= 3 and all(400 <= n <= 900 for n in acute)
    assert kinds.count("community") >= 2
    assert kinds.count("care_home") >= 10
    vw = [sum(w.beds for w in s.wards) for s in spec.sites if s.kind == "virtual_ward"]
    assert vw and vw[0] >= 100
    ward_sizes = {w.beds for s in spec.sites for w in s.wards}
    specialties = {w.specialty for s in spec.sites for w in s.wards}
    assert len(ward_sizes) > 10 and len(specialties) > 15  # not copies of one ward


def test_load_creates_beds_with_their_states_and_events(rt: Runtime) -> None:
    result = rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    assert (result.sites_created, result.wards_created, result.beds_created) == (2, 7, 28)
    esc = rt.system.get_ward("ACU1-ESC")
    assert esc.bed_count == 4
    beds = rt.capacity.list_beds(BedFilter(ward="ACU1-ESC"))
    assert [b.state.value for b in beds] == ["available", "available", "closed", "closed"]
    assert beds[2].state_reason == "unstaffed"
    with rt.db.read() as s:
        created = s.execute(
            select(func.count()).select_from(EventRecord).where(EventRecord.type == "bed.created")
        ).scalar_one()
    assert created == 28
    vw = rt.capacity.list_beds(BedFilter(site="VW1"))
    assert all(b.virtual for b in vw)


def test_reload_is_idempotent_and_can_grow(rt: Runtime, tmp_path: Path) -> None:
    rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    again = rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    assert again.beds_created == 0 and again.sites_updated == 2
    raw = yaml.safe_load(SMALL_SYSTEM.read_text())
    raw["sites"][0]["wards"][0]["beds"] = 8
    raw["sites"][0]["wards"][0]["name"] = "AMU (renamed)"
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump(raw))
    result = rt.system.load(load_system_file(grown), SYSTEM)
    assert result.beds_created == 2
    assert rt.system.get_ward("ACU1-AMU").name == "AMU (renamed)"
    assert _bed_count(rt) == 30


BAD_FILES = {
    "duplicate site": (
        "sites[1].code",
        lambda r: r["sites"][1].update(code="ACU1"),
        "site code 'ACU1' is used twice",
    ),
    "duplicate ward": (
        "",
        lambda r: r["sites"][1]["wards"][0].update(code="ACU1-AMU"),
        "ward code 'ACU1-AMU' is used twice",
    ),
    "negative beds": (
        "",
        lambda r: r["sites"][0]["wards"][0].update(beds=-3),
        "sites[0].wards[0].beds: Input should be greater than or equal to 0",
    ),
    "staffed above beds": (
        "",
        lambda r: r["sites"][0]["wards"][1].update(staffed_beds=9),
        "staffed_beds (9) exceeds beds (4)",
    ),
    "unknown kind": (
        "",
        lambda r: r["sites"][0].update(kind="hospice"),
        "sites[0].kind: Input should be",
    ),
    "unknown field": (
        "",
        lambda r: r["sites"][0].update(colour="blue"),
        "sites[0].colour: Extra inputs are not permitted",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_refused_through_the_cli_and_nothing_is_written(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, mutate, message = BAD_FILES[case]
    raw = yaml.safe_load(SMALL_SYSTEM.read_text())
    mutate(raw)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["system", "load", str(bad)])
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ") or message in result.stderr
    ok = CliRunner().invoke(cli, ["system", "show"])
    assert "no system is loaded" in ok.stderr


def test_malformed_yaml_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: {code: X\nsites: [")
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["system", "load", str(bad)])
    assert result.exit_code == 2
    assert "is not valid YAML" in result.stderr


def test_cli_load_then_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["system", "load", str(SMALL_SYSTEM)])
    assert result.exit_code == 0, result.output
    assert "2 sites, 7 wards, 28 beds created" in result.output
    shown = CliRunner().invoke(cli, ["system", "show"])
    assert "ACU1" in shown.output and "Virtual Ward Service" in shown.output


def test_half_bad_file_writes_nothing(rt: Runtime) -> None:
    """A file whose error is only found while writing (shrinking a ward) rolls back whole."""
    rt.system.load(load_system_file(SMALL_SYSTEM), SYSTEM)
    raw = yaml.safe_load(SMALL_SYSTEM.read_text())
    raw["sites"].insert(
        0,
        {
            "code": "NEW1",
            "name": "New",
            "kind": "care_home",
            "wards": [
                {
                    "code": "NEW1-A",
                    "name": "A",
                    "specialty": "nursing care",
                    "general_acute": False,
                    "beds": 10,
                }
            ],
        },
    )
    raw["sites"][1]["wards"][0]["beds"] = 2  # AMU has 6 beds: shrinking is refused
    with pytest.raises(ValidationFailed, match="never deleted"):
        rt.system.load(validate_system(raw), SYSTEM)
    assert _bed_count(rt) == 28
    assert [s.code for s in rt.system.list_sites()] == ["ACU1", "VW1"]


def test_api_load_and_edit(rt: Runtime, client: TestClient) -> None:
    headers = auth(rt, "admin")
    body = yaml.safe_load(SMALL_SYSTEM.read_text())
    r = client.put("/api/system", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["beds_created"] == 28
    r = client.post(
        "/api/sites",
        headers=headers,
        json={
            "code": "CH1",
            "name": "Oak House",
            "kind": "care_home",
            "lat": 51.1,
            "lon": 1.1,
            "wards": [
                {
                    "code": "CH1-A",
                    "name": "Oak",
                    "specialty": "nursing care",
                    "general_acute": False,
                    "beds": 12,
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["bed_count"] == 12
    r = client.post(
        "/api/wards",
        headers=headers,
        json={
            "site": "ACU1",
            "code": "ACU1-NEW",
            "name": "Surge",
            "specialty": "general medicine",
            "kind": "escalation",
            "beds": 5,
            "staffed_beds": 0,
        },
    )
    assert r.status_code == 201 and r.json()["bed_count"] == 5
    r = client.patch("/api/wards/ACU1-NEW", headers=headers, json={"name": "Surge ward"})
    assert r.json()["name"] == "Surge ward"
    r = client.post("/api/wards/ACU1-NEW/beds", headers=headers, json={"count": 3})
    assert r.json()["bed_count"] == 8
    r = client.patch("/api/sites/CH1", headers=headers, json={"name": "Oak House Nursing"})
    assert r.json()["name"] == "Oak House Nursing"
    assert client.get("/api/sites/CH1", headers=headers).json()["ward_count"] == 1


def test_api_rejects_bad_systems_with_clear_messages(rt: Runtime, client: TestClient) -> None:
    headers = auth(rt, "admin")
    body = yaml.safe_load(SMALL_SYSTEM.read_text())
    body["sites"][0]["wards"][0]["beds"] = -1
    r = client.put("/api/system", json=body, headers=headers)
    assert r.status_code == 422
    assert "sites.0.wards.0.beds" in r.json()["message"]
    r = client.post(
        "/api/wards",
        headers=headers,
        json={"site": "NOPE", "code": "X-1", "name": "x", "specialty": "x", "beds": 1},
    )
    assert r.status_code in (404, 409)
    assert "NOPE" in r.json()["message"] or "no system" in r.json()["message"]
    assert _bed_count(rt) == 0
