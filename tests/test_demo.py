"""The demo: a realistic starting occupancy and a flow that keeps the board consistent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from wardwatch.capacity.models import Bed, Stay
from wardwatch.capacity.states import BedState
from wardwatch.config import Settings
from wardwatch.core.clock import ManualClock
from wardwatch.demo.generator import DemoGenerator
from wardwatch.demo.run import ward_plans
from wardwatch.runtime import Runtime


def _consistent(rt: Runtime) -> None:
    """Every occupied bed has exactly one open stay, and every open stay one occupied bed."""
    with rt.db.read() as s:
        occupied = set(s.scalars(select(Bed.id).where(Bed.state == BedState.OCCUPIED.value)))
        open_stays = list(s.execute(select(Stay.bed_id).where(Stay.discharged_at.is_(None))))
        bed_stay = dict(s.execute(select(Bed.id, Bed.stay_id).where(Bed.id.in_(occupied))).all())
    assert {b for (b,) in open_stays} == occupied
    assert len(open_stays) == len(occupied)
    assert all(bed_stay[b] for b in occupied)


def test_demo_starts_at_realistic_occupancy(demo_dir: Path) -> None:
    rt = Runtime.build(
        Settings(data_dir=demo_dir), clock=ManualClock(datetime(2026, 1, 12, 10, 0, tzinfo=UTC))
    )
    try:
        snap = rt.occupancy.live()
        ga = snap["system"]["general_acute"]["occupancy"]
        assert 0.90 <= ga <= 0.96, ga
        assert snap["system"]["by_site_kind"]["virtual_ward"]["occupied"] > 50
        assert snap["system"]["vacant_not_ready"] > 0 and snap["system"]["blocked"] > 0
        stays = rt.occupancy.long_stays()
        assert stays["SYSTEM"]["21+"] > 0  # care homes and community hospitals hold long stays
        _consistent(rt)
    finally:
        rt.close()


def test_generator_flow_for_a_simulated_day(demo_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "demo"
    copy.mkdir()
    (copy / "wardwatch.db").write_bytes((demo_dir / "wardwatch.db").read_bytes())
    clock = ManualClock(datetime(2026, 1, 12, 10, 0, tzinfo=UTC))
    rt = Runtime.build(Settings(data_dir=copy), clock=clock)
    try:
        gen = DemoGenerator(rt.capacity, clock, ward_plans(rt), seed=3)
        for _ in range(24 * 4):  # a day in 15-minute steps
            clock.advance(timedelta(minutes=15))
            gen.step(timedelta(minutes=15))
        c = gen.counts
        # ~2,100 acute beds at 5.5 days' stay and short AMU/SAU stays: hundreds a day.
        assert 200 < c["admitted"] < 1200, c
        assert 150 < c["discharged"] < 1200, c
        assert c["transferred"] > 20 and c["cleaned"] > 100, c
        _consistent(rt)
        ga = rt.occupancy.live()["system"]["general_acute"]["occupancy"]
        assert 0.85 <= ga <= 0.99, ga
        with rt.db.read() as s:
            open_stays = s.scalar(
                select(func.count()).select_from(Stay).where(Stay.discharged_at.is_(None))
            )
        assert open_stays == rt.occupancy.live()["system"]["occupied"]
    finally:
        rt.close()


def test_the_demo_never_uses_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wardwatch.demo.run import demo_settings

    monkeypatch.setenv("WARDWATCH_DATABASE_URL", "postgresql://someone@real-trust-db/wardwatch")
    url = demo_settings(tmp_path).resolved_database_url()
    assert url == f"sqlite:///{(tmp_path / 'wardwatch.db').resolve()}"
