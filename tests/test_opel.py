"""OPEL: bands and levels, history and notifications, system aggregation, the YAML config,
divert / mutual-aid suggestions, the API and the CLI.

Scores are checked by hand: band b is worth (b - 1) / 3 x 100 points and a score is the
weight-averaged points of the parameters that have a value (docs/opel.md).
"""

from __future__ import annotations

import itertools
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import PAYLOADS, auth
from wardwatch.app import create_app
from wardwatch.capacity.models import HealthSystem, Site
from wardwatch.capacity.schemas import (
    AdmitRequest,
    DischargeRequest,
    PatientIn,
    StayUpdate,
    SystemSpec,
    WardCreate,
)
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.capacity.system import validate_system
from wardwatch.cli import app as cli
from wardwatch.clikit import out
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock, SystemClock
from wardwatch.core.errors import NotFound, ValidationFailed
from wardwatch.db.eventlog import EventRecord
from wardwatch.frontdoor.divert import haversine_km, suggestions
from wardwatch.frontdoor.models import OpelLevel
from wardwatch.frontdoor.opel_config import DEFAULT, PARAMETERS, OpelConfig
from wardwatch.frontdoor.opel_scoring import band, held_level, level_for
from wardwatch.frontdoor.schemas import AttendanceIn, DecisionIn, DepartureIn, HandoverMessage
from wardwatch.runtime import Runtime

FRONT_DOOR = PAYLOADS / "front-door-system.yaml"
#: Two parameters of equal weight, so each band step moves the score by 16.7 points.
WALK = {
    "parameters": [
        {"name": "ga_occupancy_pct", "weight": 50, "thresholds": [80, 90, 95]},
        {"name": "mean_handover_minutes", "weight": 50, "thresholds": [15, 30, 45]},
    ]
}
_n = itertools.count(1)


def spec(
    system: dict[str, Any] | None = None,
    sites: dict[str, dict[str, Any]] | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> SystemSpec:
    raw = yaml.safe_load(FRONT_DOOR.read_text(encoding="utf-8"))
    if system is not None:
        raw["system"]["opel"] = system
    for site in raw["sites"]:
        if site["code"] in (sites or {}):
            site["opel"] = (sites or {})[site["code"]]
    raw["sites"] += extra or []
    return validate_system(raw)


def admit(rt: Runtime, site: str, n: int) -> list[str]:
    beds = rt.capacity.list_beds(BedFilter(site=site, state=BedState.AVAILABLE))[:n]
    assert len(beds) == n
    return [
        rt.capacity.admit(
            AdmitRequest(bed_id=b.id, patient=PatientIn(local_id=f"P{next(_n)}")), SYSTEM
        ).id
        for b in beds
    ]


def discharge(rt: Runtime, stays: list[str]) -> None:
    for stay in stays:
        rt.capacity.discharge(stay, DischargeRequest(destination="home", pathway=0), SYSTEM)


def crew(rt: Runtime, site: str, minutes: float, *, waiting: bool = False) -> None:
    """An ambulance that arrived ``minutes`` ago: handed over now, or still waiting."""
    now, incident = rt.clock.now(), f"I{next(_n)}"
    steps = [("arrival", now - timedelta(minutes=minutes))]
    steps += [] if waiting else [("handover", now)]
    for kind, at in steps:
        rt.frontdoor.handovers.apply(
            HandoverMessage.model_validate(
                {"type": kind, "service": "SECAMB", "incident": incident, "at": at, "site": site}
            ),
            SYSTEM,
        )


def level(rt: Runtime, site: str) -> tuple[int, float]:
    found = rt.opel.compute().site(site)
    assert found is not None
    return found.level, found.score


def control_centre(rt: Runtime) -> list[dict[str, Any]]:
    return [m for m in rt.notify.feed(["role:control-centre"]) if m["event"] == "opel.changed"]


# --- bands and levels (pure) ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_each_parameter_reaches_each_band_at_its_threshold_and_not_below(name: str) -> None:
    info = PARAMETERS[name]
    defaults: dict[str, list[float]] = {p.name: p.thresholds for p in DEFAULT.parameters}
    examples = {"longest_handover_minutes": [30.0, 45.0, 60.0], "four_hour_pct": [76.0, 70.0, 60.0]}
    thresholds = defaults.get(name) or examples[name]
    step = 0.01 if info.higher_is_worse else -0.01
    for i, t in enumerate(thresholds):
        assert band(t, thresholds, info.higher_is_worse) == i + 2
        assert band(t - step, thresholds, info.higher_is_worse) == i + 1
    worst = thresholds[-1] + 1000 * step
    assert band(worst, thresholds, info.higher_is_worse) == 4


def test_levels_and_hysteresis_by_hand() -> None:
    cut = [20.0, 45.0, 70.0]
    assert [level_for(s, cut) for s in (0, 19.99, 20, 44.99, 45, 69.99, 70, 100)] == [
        1, 1, 2, 2, 3, 3, 4, 4,
    ]  # fmt: skip
    assert held_level(66.7, 4, cut, 5) == 4  # 66.7 > 70 - 5: stays
    assert held_level(64.9, 4, cut, 5) == 3
    assert held_level(16.7, 3, cut, 5) == 2  # falls past 45 - 5 but not past 20 - 5
    assert held_level(14.9, 3, cut, 5) == 1
    assert held_level(80, 2, cut, 5) == 4  # up at once
    assert held_level(10, None, cut, 5) == 1


def test_the_default_is_documented_and_weights_add_up_to_100() -> None:
    assert sum(p.weight for p in DEFAULT.parameters) == 100
    assert DEFAULT.levels == [20, 45, 70] and DEFAULT.divert.at_level == 4
    docs = (Path(__file__).parents[1] / "docs" / "opel.md").read_text(encoding="utf-8")
    assert "modelled on" in docs and all(f"`{name}`" in docs for name in PARAMETERS)


# --- the system file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opel", "problem"),
    [
        (
            {"parameters": [{"name": "bed_vibes", "weight": 1, "thresholds": [1, 2, 3]}]},
            "system.opel.parameters[0].name: Input should be 'ga_occupancy_pct'",
        ),
        (
            {"parameters": [{"name": "nctr_pct", "weight": 1, "thresholds": [10, 10, 20]}]},
            "system.opel.parameters[0]: thresholds of nctr_pct must strictly increase",
        ),
        (
            {"parameters": [{"name": "four_hour_pct", "weight": 1, "thresholds": [60, 70, 76]}]},
            "thresholds of four_hour_pct must strictly decrease (a lower value is worse)",
        ),
        (
            {"parameters": [{"name": "nctr_pct", "weight": 0, "thresholds": [10, 15, 20]}]},
            "system.opel.parameters[0].weight: Input should be greater than 0",
        ),
        ({"levels": [50, 40, 70]}, "system.opel: levels must be three increasing scores"),
        (
            {"parameters": [{"name": "nctr_pct", "weight": 1, "thresholds": [1, 2]}]},
            "system.opel.parameters[0].thresholds: List should have at least 3 items",
        ),
        ({"divert": {"max_distance_km": "far"}}, "system.opel.divert.max_distance_km"),
        ({"hysterisis": 5}, "system.opel.hysterisis: Extra inputs are not permitted"),
    ],
)
def test_bad_opel_config_refuses_the_file_naming_the_place(
    opel: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationFailed) as exc:
        spec(system=opel)
    assert any(problem in p for p in exc.value.problems), exc.value.problems


def test_opel_on_a_community_site_is_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"sites\[3\]: opel: OPEL is computed for acute"):
        spec(sites={"COMM": WALK})


def test_a_site_config_replaces_the_system_one_and_both_are_stored(rt: Runtime) -> None:
    own = {"parameters": [{"name": "dta_over_4h", "weight": 3, "thresholds": [1, 2, 3]}]}
    rt.system.load(spec(system=WALK, sites={"NEAR": own}), SYSTEM)
    snap = rt.opel.compute()
    names = {s.code: [p.name for p in s.parameters] for s in snap.sites}
    assert names == {
        "BUSY": ["ga_occupancy_pct", "mean_handover_minutes"],
        "FAR": ["ga_occupancy_pct", "mean_handover_minutes"],
        "NEAR": ["dta_over_4h"],
    }
    with rt.db.read() as s:
        system = s.get_one(HealthSystem, 1)
        near = s.scalars(select(Site).where(Site.code == "NEAR")).one()
        assert OpelConfig.model_validate(system.opel).parameters[0].weight == 50
        assert OpelConfig.model_validate(near.opel).parameters[0].name == "dta_over_4h"
    # Adding a ward through the API keeps the site's and the system's settings.
    rt.system.create_ward(
        WardCreate(site="NEAR", code="NEAR-SAU", name="SAU", specialty="surgery", beds=2), SYSTEM
    )
    with rt.db.read() as s:
        assert s.get_one(HealthSystem, 1).opel == system.opel
        assert s.scalars(select(Site.opel).where(Site.code == "NEAR")).one() == near.opel
    # A file without them goes back to the built-in default.
    rt.system.load(spec(), SYSTEM)
    assert [p.name for p in rt.opel.compute().sites[0].parameters] == [
        p.name for p in DEFAULT.parameters
    ]


# --- measuring ---------------------------------------------------------------------------------


def test_every_default_parameter_measured_from_live_data_by_hand(
    rt: Runtime, clock: ManualClock
) -> None:
    rt.system.load(spec(), SYSTEM)
    stays = admit(rt, "BUSY", 23)  # of 24 G&A beds: 95.8 % -> band 3 (95..98)
    today = clock.now().date()
    for stay in stays[:3]:  # 3 of 23 = 13.0 % without criteria to reside -> band 2 (10..15)
        rt.capacity.update_stay(stay, StayUpdate(discharge_ready_date=today), SYSTEM)
    rt.capacity.update_stay(stays[3], StayUpdate(discharge_ready_date=date(2026, 1, 6)), SYSTEM)
    crew(rt, "BUSY", 50, waiting=True)  # mean 50 min -> band 4
    now = clock.now()
    for ref, arrived, dta in (("A1", 13, 5), ("A2", 6, 4.5), ("A3", 2, 1)):
        a = rt.frontdoor.ed.arrive(
            AttendanceIn(
                site="BUSY",
                reference=ref,
                arrived_at=now - timedelta(hours=arrived),
                patient=PatientIn(local_id=f"ED-{ref}"),
            ),
            SYSTEM,
        )
        rt.frontdoor.ed.decide_to_admit(
            a.id, DecisionIn(at=now - timedelta(hours=dta), specialty="general medicine"), SYSTEM
        )
    busy = rt.opel.compute().site("BUSY")
    assert busy is not None
    got: dict[str, Any] = {p.name: (p.value, p.band) for p in busy.parameters}
    assert got == {
        "ga_occupancy_pct": (pytest.approx(100 * 23 / 24), 3),
        "mean_handover_minutes": (pytest.approx(50), 4),
        "dta_over_4h": (2, 2),  # A1 and A2 (A3's decision is 1 h old)
        "ed_over_12h": (1, 2),  # A1
        "nctr_pct": (pytest.approx(100 * 3 / 23), 2),
        "escalation_beds_open": (4, 2),  # BUSY-ESC, none closed
    }
    by_hand = (25 * 200 / 3 + 20 * 100 + 15 * 100 / 3 * 3 + 10 * 100 / 3) / 100
    assert busy.score == pytest.approx(by_hand) and by_hand == pytest.approx(55.0)
    assert busy.level == 3
    assert busy.why.startswith("OPEL 3 (score 55.0): Mean handover 50 min (band 4), G&A occupancy")
    assert sum(p.contribution for p in busy.parameters) == pytest.approx(busy.score)


def test_optional_parameters_longest_handover_and_four_hours_where_lower_is_worse(
    rt: Runtime, clock: ManualClock
) -> None:
    own = {
        "parameters": [
            {"name": "longest_handover_minutes", "weight": 1, "thresholds": [30, 45, 60]},
            {"name": "four_hour_pct", "weight": 1, "thresholds": [76, 70, 60]},
        ]
    }
    rt.system.load(spec(sites={"NEAR": own, "FAR": own}), SYSTEM)
    crew(rt, "NEAR", 20)
    crew(rt, "NEAR", 50, waiting=True)  # the longest: band 3 (45..60)
    now = clock.now()
    for ref, arrived, stayed in (("B1", 10, 3), ("B2", 8, 2), ("B3", 9, 5)):
        a = rt.frontdoor.ed.arrive(
            AttendanceIn(site="NEAR", reference=ref, arrived_at=now - timedelta(hours=arrived)),
            SYSTEM,
        )
        rt.frontdoor.ed.depart(
            a.id,
            DepartureIn(at=now - timedelta(hours=arrived - stayed), disposition="discharged"),
            SYSTEM,
        )
    snap = rt.opel.compute()
    near, far = snap.site("NEAR"), snap.site("FAR")
    assert near is not None and far is not None
    got: dict[str, Any] = {p.name: (p.value, p.band) for p in near.parameters}
    assert got == {
        "longest_handover_minutes": (pytest.approx(50), 3),
        "four_hour_pct": (pytest.approx(200 / 3), 3),  # 2 of 3 within 4 h: under 70, over 60
    }
    assert near.score == pytest.approx(200 / 3) and near.level == 3
    assert near.parameters[1].as_dict()["direction"] == "lower_is_worse"
    assert [p.note for p in far.parameters] == [
        "no ambulance arrivals in the last 4 h", "no ED departures in the last 24 h",
    ]  # fmt: skip
    assert (far.score, far.level) == (0.0, 1)
    assert far.why.startswith("OPEL 1 (score 0.0): every parameter in band 1; left out: ")


def test_a_handover_reaches_band_2_at_exactly_15_minutes(rt: Runtime, clock: ManualClock) -> None:
    rt.system.load(spec(system=WALK), SYSTEM)
    crew(rt, "NEAR", 14, waiting=True)
    clock.advance(timedelta(seconds=59))
    params = {p.name: p for p in rt.opel.compute().sites[2].parameters}
    assert params["mean_handover_minutes"].band == 1
    clock.advance(timedelta(seconds=1))  # waiting 15:00
    params = {p.name: p for p in rt.opel.compute().sites[2].parameters}
    assert params["mean_handover_minutes"].band == 2


def test_missing_data_is_left_out_and_named_never_scored_as_calm(rt: Runtime) -> None:
    rt.system.load(spec(system=WALK), SYSTEM)
    admit(rt, "FAR", 17)  # 85 % -> band 2; no ambulance: handover left out
    far = rt.opel.compute().site("FAR")
    assert far is not None
    assert far.score == pytest.approx(100 / 3)  # occupancy carries the whole weight
    handover = far.parameters[1]
    assert (handover.band, handover.contribution, handover.note) == (
        None, 0.0, "no ambulance arrivals in the last 4 h",
    )  # fmt: skip
    assert "left out: Mean handover (no data: no ambulance arrivals in the last 4 h)" in far.why


# --- a site's level over a day: history, hysteresis, notifications --------------------------


def test_a_site_goes_1_2_3_4_and_back_with_history_and_one_notification_per_change(
    rt: Runtime, clock: ManualClock
) -> None:
    rt.system.load(spec(system=WALK), SYSTEM)
    first = rt.opel.check()
    assert [(c.scope, c.level, c.previous) for c in first] == [
        ("BUSY", 1, None), ("FAR", 1, None), ("NEAR", 1, None), ("system", 1, None),
    ]  # fmt: skip
    assert control_centre(rt) == []  # knowing where we start is not a change
    stays: list[str] = []

    def phase(add: int, handover: float, expect: int) -> list[tuple[str, int, int | None]]:
        clock.advance(timedelta(hours=5))  # the previous crews leave the 4-hour window
        if add > 0:
            stays.extend(admit(rt, "BUSY", add))
        elif add < 0:
            discharge(rt, [stays.pop() for _ in range(-add)])
        crew(rt, "BUSY", handover)
        assert level(rt, "BUSY")[0] == expect
        return [(c.scope, c.level, c.previous) for c in rt.opel.check()]

    # occupancy of 24 beds: 20 = 83 % band 2, 22 = 92 % band 3, 23 = 96 % band 4
    assert phase(20, 20, 2) == [("BUSY", 2, 1)]  # 33.3
    assert phase(2, 20, 3) == [("BUSY", 3, 2)]  # 50.0
    assert phase(1, 35, 4) == [("BUSY", 4, 3), ("system", 2, 1)]  # 83.3; system 31.25
    assert phase(0, 20, 4) == []  # 66.7: under 70 but not under 65, held; no new row
    held = rt.opel.compute().site("BUSY")
    assert held is not None and "held at OPEL 4 until the score falls below 65" in held.why
    assert phase(0, 10, 3) == [("BUSY", 3, 4)]  # 50.0; system 18.75 held at 2 (> 15)
    assert phase(-3, 10, 2) == [("BUSY", 2, 3), ("system", 1, 2)]  # 16.7 held at 2
    assert phase(-20, 10, 1) == [("BUSY", 1, 2)]  # 0

    history = rt.opel.history("BUSY")
    assert [(r["level"], r["previous"]) for r in history] == [
        (1, None), (2, 1), (3, 2), (4, 3), (3, 4), (2, 3), (1, 2),
    ]  # fmt: skip
    assert [r["until"] for r in history[:-1]] == [r["at"] for r in history[1:]]
    assert history[-1]["until"] is None
    drivers = {p["name"]: (p["value"], p["band"]) for p in history[3]["parameters"]}
    assert drivers == {"ga_occupancy_pct": (95.8, 4), "mean_handover_minutes": (35.0, 3)}
    assert history[3]["score"] == pytest.approx(83.33)

    sent = control_centre(rt)
    assert [(m["data"]["scope"], m["data"]["level"], m["data"].get("previous")) for m in sent] == [
        ("BUSY", 2, 1), ("BUSY", 3, 2), ("BUSY", 4, 3), ("system", 2, 1),
        ("BUSY", 3, 4), ("BUSY", 2, 3), ("system", 1, 2), ("BUSY", 1, 2),
    ]  # fmt: skip
    assert sent[2]["data"]["summary"].startswith("Busy General: OPEL 3 → 4 (score 83.3): G&A")
    with rt.db.read() as s:
        types = list(s.scalars(select(EventRecord.type).where(EventRecord.type.like("opel.%"))))
    assert types.count("opel.started") == 4 and types.count("opel.changed") == 8


def test_no_duplicate_row_when_the_level_is_unchanged(rt: Runtime, clock: ManualClock) -> None:
    rt.system.load(spec(system=WALK), SYSTEM)
    rt.opel.check()
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        assert rt.opel.check() == []
    with rt.db.read() as s:
        assert len(list(s.scalars(select(OpelLevel)))) == 4
    busy = rt.opel.compute().site("BUSY")
    assert busy is not None and busy.since == clock.now() - timedelta(minutes=3)


def test_history_window_and_scopes(rt: Runtime, clock: ManualClock) -> None:
    rt.system.load(spec(system=WALK), SYSTEM)
    start = clock.now()
    rt.opel.check()
    clock.advance(timedelta(hours=1))
    admit(rt, "BUSY", 22)
    crew(rt, "BUSY", 20)
    rt.opel.check()  # BUSY 1 -> 3
    later = clock.now()
    in_force = rt.opel.history("BUSY", since=start + timedelta(minutes=30))
    assert [r["level"] for r in in_force] == [1, 3]  # the period in force at 'since' too
    assert [r["level"] for r in rt.opel.history("BUSY", since=later)] == [3]
    assert [r["level"] for r in rt.opel.history("BUSY", until=start)] == [1]
    assert {r["scope"] for r in rt.opel.history()} == {"BUSY", "FAR", "NEAR", "system"}
    assert [r["level"] for r in rt.opel.history("system")] == [1]
    with pytest.raises(NotFound, match="no site with code 'NOPE'"):
        rt.opel.history("NOPE")
    with pytest.raises(ValidationFailed, match="acute sites"):
        rt.opel.history("COMM")
    with pytest.raises(ValidationFailed, match="time zone"):
        rt.opel.history("BUSY", since=datetime(2026, 1, 5, 9))  # noqa: DTZ001


def test_system_level_is_the_bed_weighted_mean_of_site_scores(rt: Runtime) -> None:
    rt.system.load(spec(system=WALK), SYSTEM)
    admit(rt, "BUSY", 23)  # 95.8 % band 4 (50 points)
    crew(rt, "BUSY", 35)  # band 3 (33.3)          -> BUSY 83.3, 24 beds
    admit(rt, "NEAR", 17)  # 85 % band 2 (16.7)
    crew(rt, "NEAR", 50)  # band 4 (50)            -> NEAR 66.7, 20 beds
    #                       FAR: 0 %, no crews      -> FAR 0.0, 20 beds
    snap = rt.opel.compute()
    by_hand = (24 * (50 + 100 / 3) + 20 * (100 / 6 + 50) + 20 * 0) / 64
    assert snap.system.score == pytest.approx(by_hand) and by_hand == pytest.approx(52.083, 1e-3)
    assert snap.system.level == 3
    assert [(x["site"], x["weight"]) for x in snap.system.sites] == [
        ("BUSY", 24), ("FAR", 20), ("NEAR", 20),
    ]  # fmt: skip
    assert "weighted by open G&A beds" in snap.system.why


# --- divert and mutual aid -------------------------------------------------------------------


def test_haversine_by_hand() -> None:
    assert haversine_km(0, 0, 1, 0) == pytest.approx(2 * 3.14159265 * 6371.0088 / 360, 1e-6)
    assert haversine_km(0, 0, 0, 90) == pytest.approx(3.14159265 * 6371.0088 / 2, 1e-6)
    assert haversine_km(51.2745, 0.5218, 51.38, 0.53) == pytest.approx(11.74, abs=0.02)


NOWHERE = {
    "code": "NOCO",
    "name": "Nowhere General",
    "kind": "acute",
    "wards": [{"code": "NOCO-AMU", "name": "AMU", "specialty": "acute medicine", "beds": 10}],
}
BY_LEVEL = {**WALK, "divert": {"handover_mean_minutes": 60, "max_distance_km": 40}}


def test_a_site_at_opel_4_is_offered_the_nearest_site_with_room_and_reasons(
    rt: Runtime,
) -> None:
    rt.system.load(spec(system=BY_LEVEL, extra=[NOWHERE]), SYSTEM)
    admit(rt, "BUSY", 23)
    crew(rt, "BUSY", 35)  # BUSY 83.3: OPEL 4, mean 35 min (under the 60-minute trigger)
    advice = suggestions(rt.opel, "BUSY")
    assert advice.under_pressure and advice.level == 4
    assert advice.reasons[0] == "Busy General is at OPEL 4 (divert is considered from OPEL 4)"
    assert "under the 60-minute threshold" in advice.reasons[1]
    (near,) = advice.suggestions
    assert (near.site, near.level, near.available_beds, near.mean_handover_minutes) == (
        "NEAR", 1, 20, None,
    )  # fmt: skip
    assert near.distance_km == pytest.approx(11.74, abs=0.02)
    assert near.reasons == [
        "11.7 km away (within 40 km)",
        "at OPEL 1, lower than OPEL 4 here",
        "20 G&A bed(s) available now",
        "no ambulance arrivals in the last 4 h (no queue)",
    ]
    rejected = {r.site: r.reason for r in advice.rejected}
    assert rejected["FAR"].endswith("km away, beyond the 40 km limit")
    assert 50 < float(rejected["FAR"].split(" km")[0]) < 60
    assert rejected["NOCO"] == "no coordinates in the system file: distance unknown"
    assert [r.site for r in advice.rejected] == ["FAR", "NOCO"]  # unknown distance last


def test_a_site_config_widens_the_radius_and_a_slower_queue_is_rejected(rt: Runtime) -> None:
    wide = {**BY_LEVEL, "divert": {"handover_mean_minutes": 30, "max_distance_km": 100}}
    rt.system.load(spec(system=BY_LEVEL, sites={"BUSY": wide}), SYSTEM)
    admit(rt, "BUSY", 10)  # 41.7 %: band 1
    crew(rt, "BUSY", 40)  # band 3: BUSY 33.3, OPEL 2, but mean 40 >= 30
    advice = suggestions(rt.opel, "BUSY")
    assert advice.under_pressure and advice.level == 2
    assert "mean handover 40 min over the last 4 h, at or over the 30-minute" in advice.reasons[1]
    assert [s.site for s in advice.suggestions] == ["NEAR", "FAR"]  # nearest first
    crew(rt, "NEAR", 50)  # NEAR now queues longer (and is at OPEL 3 with 50.0)
    advice = suggestions(rt.opel, "BUSY")
    assert [s.site for s in advice.suggestions] == ["FAR"]
    (near,) = advice.rejected
    assert near.reason == (
        "at OPEL 3, not lower than OPEL 2 here; mean handover 50 min, not shorter than 40 min here"
    )


def test_a_site_not_under_pressure_gets_no_suggestions_and_says_why(rt: Runtime) -> None:
    rt.system.load(spec(), SYSTEM)
    crew(rt, "NEAR", 20)
    advice = suggestions(rt.opel, "NEAR")
    assert not advice.under_pressure and advice.suggestions == [] and advice.rejected == []
    assert advice.reasons == [
        "Near Hospital is at OPEL 1 (divert is considered from OPEL 4)",
        "mean handover 20 min over the last 4 h, under the 30-minute threshold",
        "not under pressure: no divert or mutual aid suggested",
    ]
    with pytest.raises(NotFound):
        suggestions(rt.opel, "NOPE")
    with pytest.raises(ValidationFailed, match="community site"):
        suggestions(rt.opel, "COMM")


# --- the API and the CLI ------------------------------------------------------------------------


def test_api_levels_history_and_divert(rt: Runtime) -> None:
    rt.system.load(spec(system=BY_LEVEL), SYSTEM)
    admit(rt, "BUSY", 23)
    crew(rt, "BUSY", 35)
    rt.opel.check()
    # No lifespan (no ``with``): the app's periodic check must not race this test's clock.
    client = TestClient(create_app(rt))
    headers = auth(rt, "read-only")
    body = client.get("/api/opel", headers=headers).json()
    busy = body["sites"][0]
    assert (busy["site"], busy["name"], busy["level"], busy["score"]) == (
        "BUSY", "Busy General", 4, 83.3,
    )  # fmt: skip
    assert busy["since"] == rt.clock.now().isoformat()
    assert set(busy["parameters"][0]) >= {
        "name", "label", "value", "unit", "band", "weight", "contribution",
    }  # fmt: skip
    assert busy["why"].startswith("OPEL 4 (score 83.3)")
    assert set(body["system"]) >= {"level", "score", "why"} and body["system"]["level"] == 2
    history = client.get("/api/opel/history?scope=BUSY", headers=headers).json()
    assert [(r["scope"], r["level"]) for r in history] == [("BUSY", 4)]
    divert = client.get("/api/opel/divert?site=BUSY", headers=headers).json()
    assert divert["under_pressure"] is True and divert["suggestions"][0]["site"] == "NEAR"
    assert set(divert["suggestions"][0]) >= {
        "site", "name", "distance_km", "level", "available_beds", "mean_handover_minutes",
        "reasons",
    }  # fmt: skip
    assert {"site": "FAR", "name": "Far Royal"}.items() <= divert["rejected"][0].items()

    for url in ("/api/opel/divert?site=NOPE", "/api/opel/history?scope=NOPE"):
        r = client.get(url, headers=headers)
        assert r.status_code == 404 and "no site with code 'NOPE'" in r.json()["message"]
    assert client.get("/api/opel/divert", headers=headers).status_code == 422
    naive = client.get("/api/opel/history?since=2026-01-05T09:00:00", headers=headers)
    assert naive.status_code == 422 and "time zone" in naive.json()["message"]
    future = client.get("/api/opel?at=2099-01-01T00:00:00Z", headers=headers)
    assert future.status_code == 422
    assert client.get("/api/opel").status_code == 401


def test_the_app_records_levels_in_its_periodic_loop(rt: Runtime) -> None:
    rt.system.load(spec(), SYSTEM)
    with TestClient(create_app(rt)):
        deadline = time.monotonic() + 10
        while len(rt.opel.current()) < 4:  # the loop's first pass runs at start-up
            assert time.monotonic() < deadline, "the periodic loop did not record OPEL levels"
            time.sleep(0.01)
    assert [r["scope"] for r in rt.opel.current()] == ["BUSY", "FAR", "NEAR", "system"]


@pytest.fixture
def cli_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WARDWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WARDWATCH_DATABASE_URL", raising=False)
    rt = Runtime.build(Settings(data_dir=tmp_path), clock=SystemClock())
    try:
        rt.system.load(spec(system=BY_LEVEL), SYSTEM)
        admit(rt, "BUSY", 23)
        crew(rt, "BUSY", 35)
    finally:
        rt.close()
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    width = out.width
    out.width = 250  # wide enough that no cell wraps
    try:
        result = CliRunner().invoke(cli, ["opel", *args])
    finally:
        out.width = width
    return result.exit_code, result.output


def test_cli_show_check_history_and_divert(cli_system: Path) -> None:
    code, text = run("show")
    assert code == 0, text
    busy = next(line for line in text.splitlines() if "BUSY Busy General" in line)
    assert "│ 4 " in busy and "83.3" in busy and "95.8% [4]" in busy and "35 min [3]" in busy
    assert "SYSTEM" in text and "BUSY: OPEL 4 (score 83.3)" in text
    code, text = run("check")
    assert code == 0 and "Busy General: OPEL 4 (score 83.3)" in text and "4 level(s)" in text
    code, text = run("history", "--site", "BUSY")
    assert code == 0, text
    assert "G&A occupancy 95.8 [4], Mean handover 35.0 [3]" in text
    code, text = run("divert", "BUSY")
    assert code == 0 and "NEAR Near Hospital" in text and "not FAR Far Royal" in text
    code, text = run("history", "--site", "NOPE")
    assert code == 1 and "no site with code 'NOPE'" in text
