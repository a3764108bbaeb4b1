"""A day of a 500-bed hospital through the whole coordination loop, on both backends.

Patients are discharged at realistic rates, ED decisions to admit become bed requests that
a (simulated) bed manager allocates, and simulated cleaners and porters answer their tasks
(a few late, so escalations happen). Then, from the raw event log alone and with code
written here independently of ``wardwatch.kpi``, the test checks that

- every discharge produced exactly one cleaning task;
- every task finished (or was cancelled with a reason), and every task that missed a time
  limit was escalated for it;
- the KPI API's turnaround, task and bed-wait figures equal the independent figures.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import auth
from wardwatch.app import create_app
from wardwatch.capacity.models import Ward
from wardwatch.capacity.schemas import SiteSpec, SystemInfo, SystemSpec, WardSpec
from wardwatch.capacity.service import BedFilter
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import ManualClock
from wardwatch.db.eventlog import EventRecord
from wardwatch.demo.generator import DemoGenerator
from wardwatch.demo.run import ward_plans
from wardwatch.runtime import Runtime
from wardwatch.tasks.models import Escalation, Task

STEP = timedelta(minutes=5)


def hospital() -> SystemSpec:
    wards = [
        WardSpec(code="BIG-AMU", name="AMU", specialty="acute medicine", beds=40, side_rooms=6)
    ]
    for i, sex in enumerate(["male"] * 4 + ["female"] * 4 + ["mixed"] * 4):
        wards.append(
            WardSpec(
                code=f"BIG-M{i:02d}",
                name=f"Medical {i}",
                specialty="general medicine",
                sex_policy=sex,
                beds=30,
                side_rooms=2,
            )
        )
    for i in range(4):
        wards.append(
            WardSpec(code=f"BIG-S{i}", name=f"Surgical {i}", specialty="general surgery", beds=30)
        )
    return SystemSpec(
        system=SystemInfo(code="DAY", name="One busy day"),
        sites=[SiteSpec(code="BIG", name="Big General", kind="acute", wards=wards)],
    )


def simulate(rt: Runtime, clock: ManualClock) -> tuple[datetime, datetime]:
    rt.system.load(hospital(), SYSTEM)
    gen = DemoGenerator(rt.capacity, clock, ward_plans(rt), seed=11, tasks=rt.tasks, flow=rt.flow)
    beds = rt.capacity.list_beds(filter_all())
    gen.rng.shuffle(beds)
    plans = gen.plans
    for bed in beds[: int(len(beds) * 0.92)]:  # start the day at 92% occupancy
        gen.admit(bed, plans[bed.ward])
    start = clock.now()
    for _ in range(int(timedelta(hours=24) / STEP)):
        clock.advance(STEP)
        gen.step(STEP)
        rt.tasks.escalate_due()
    end = clock.now()
    assert gen.crew is not None and gen.manager is not None
    for _ in range(int(timedelta(hours=4) / STEP)):  # no new work: let the crews finish
        clock.advance(STEP)
        gen.crew.step()
        gen.manager.step()
        rt.tasks.escalate_due()
    assert gen.counts["discharged"] > 60 and gen.counts["requested"] > 40, gen.counts
    assert gen.manager.counts["allocated"] > 30, gen.manager.counts
    return start, end


def filter_all() -> BedFilter:
    return BedFilter(limit=100_000)


# --- independent figures from the raw log ---------------------------------------------------


def pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def independent_turnaround(
    log: list[EventRecord], start: datetime, end: datetime
) -> dict[str, Any]:
    """Minutes from occupied→awaiting_clean to the bed's next 'available', per ward."""
    began: dict[str, EventRecord] = {}
    per_ward: dict[str, list[float]] = defaultdict(list)
    for e in log:
        if e.bed_id is None or e.to_state is None:
            continue
        if (e.from_state, e.to_state) == ("occupied", "awaiting_clean"):
            began[e.bed_id] = e
        elif e.bed_id in began and e.to_state == "occupied":
            del began[e.bed_id]
        elif e.bed_id in began and e.to_state == "available":
            first = began.pop(e.bed_id)
            if start <= first.at < end:
                per_ward[first.ward_id or ""].append((e.at - first.at).total_seconds() / 60)
    return per_ward


def test_a_day_of_a_500_bed_hospital(rt: Runtime, clock: ManualClock) -> None:
    start, end = simulate(rt, clock)
    with rt.db.read() as s:
        log = list(s.scalars(select(EventRecord).order_by(EventRecord.seq)))
        tasks = list(s.scalars(select(Task)))
        escalations = list(s.scalars(select(Escalation)))
    # Every discharge produced exactly one cleaning task, for its bed.
    discharges = [e for e in log if e.type == "stay.discharged"]
    assert len(discharges) > 60
    cleaning = [t for t in tasks if t.kind == "cleaning"]
    for d in discharges:
        mine = [t for t in cleaning if t.cause == "stay.discharged" and t.stay_id == d.stay_id]
        assert len(mine) == 1 and mine[0].bed_id == d.bed_id, d.stay_id
    # Every task finished (or was cancelled with a reason) ...
    for t in tasks:
        assert t.status == "done" or (t.status == "cancelled" and t.cancel_reason), t.id
    # ... and every task that missed a limit was escalated for it.
    raised = {(e.task_id, e.breach) for e in escalations}
    late = 0
    for t in tasks:
        accepted = t.accepted_at or t.done_at or t.cancelled_at
        assert accepted is not None
        if accepted > t.accept_by + STEP:
            late += 1
            assert (t.id, "accept") in raised, t.id
        finished = t.done_at or t.cancelled_at
        assert finished is not None
        if finished > t.finish_by + STEP:
            assert (t.id, "finish") in raised, t.id
    assert late > 0 and escalations, "the day should have had some late tasks"
    assert all(e.level in (1, 2) for e in escalations)

    client = TestClient(create_app(rt))
    headers = auth(rt, "read-only")
    period = {"from": start.isoformat(), "to": end.isoformat()}

    # Turnaround per ward.
    api = client.get("/api/kpi/turnaround", params={**period, "by": "ward"}, headers=headers)
    assert api.status_code == 200, api.text
    mine = independent_turnaround(log, start, end)
    by_code = {row["ward"]: row for row in api.json()}
    assert sum(len(v) for v in mine.values()) == sum(r["count"] for r in api.json()) > 50
    with rt.db.read() as s:
        codes = {i: c for i, c in s.execute(select(Ward.id, Ward.code))}
    for ward_id, values in mine.items():
        row = by_code[codes[ward_id]]
        assert row["count"] == len(values)
        assert row["turnaround_median"] == round(statistics.median(values), 1)
        assert row["turnaround_p90"] == round(pct(values, 90), 1)

    # Task times per team.
    api = client.get("/api/kpi/tasks", params={**period, "by": "team"}, headers=headers)
    created = {e.data["task"]: e for e in log if e.type == "task.created" and start <= e.at < end}
    accepted_at = {e.data["task"]: e.at for e in log if e.type == "task.accepted"}
    done_at = {e.data["task"]: e.at for e in log if e.type == "task.done"}
    teams: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for task_id, e in created.items():
        team = e.data["team"]
        teams[team]["n"].append(1)
        if task_id in accepted_at:
            teams[team]["accept"].append((accepted_at[task_id] - e.at).total_seconds() / 60)
        if task_id in done_at:
            teams[team]["finish"].append((done_at[task_id] - e.at).total_seconds() / 60)
    rows = {r["team"]: r for r in api.json()}
    assert set(rows) == set(teams) == {"BIG-housekeeping", "BIG-porters"}
    for team, got in teams.items():
        assert rows[team]["count"] == len(got["n"])
        assert rows[team]["to_accept_median"] == round(statistics.median(got["accept"]), 1)
        assert rows[team]["to_finish_p90"] == round(pct(got["finish"], 90), 1)

    # Decision to admit → bed allocated and → arrival.
    api = client.get("/api/kpi/bed-waits", params={**period, "by": "site"}, headers=headers)
    decided = {
        e.data["request"]: datetime.fromisoformat(e.data["decided_at"])
        for e in log
        if e.type == "bed_request.created"
    }
    arrived = {e.data["request"]: e.at for e in log if e.type == "bed_request.arrived"}
    waits = [
        (arrived[r] - d).total_seconds() / 60
        for r, d in decided.items()
        if start <= d < end and r in arrived
    ]
    [row] = api.json()
    assert row["site"] == "BIG" and row["to_arrival_n"] == len(waits) > 30
    assert row["to_arrival_median"] == round(statistics.median(waits), 1)
    assert row["to_arrival_p90"] == round(pct(waits, 90), 1)
