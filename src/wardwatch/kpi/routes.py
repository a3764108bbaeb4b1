"""``/api/kpi/...``: coordination KPIs for a period, computed from the event log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal

router = APIRouter(prefix="/api/kpi", tags=["kpi"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
From = Annotated[datetime | None, Query(alias="from", description="start (with time zone)")]
To = Annotated[datetime | None, Query(alias="to", description="end (default: now)")]


@router.get("/turnaround")
def turnaround(
    rt: RuntimeDep,
    _: Reader,
    since: From = None,
    until: To = None,
    by: Annotated[str, Query(pattern="^(ward|site|day|site_day|ward_day|system)$")] = "ward",
) -> list[dict[str, Any]]:
    """Bed turnaround (discharge or transfer out → available), median and 90th percentile
    minutes, with the wait before cleaning and the cleaning itself; by episode start."""
    return rt.kpi.turnaround(since, until, by)


@router.get("/tasks")
def tasks(
    rt: RuntimeDep,
    _: Reader,
    since: From = None,
    until: To = None,
    by: Annotated[str, Query(pattern="^(team|kind|day|team_day|system)$")] = "team",
) -> list[dict[str, Any]]:
    """Minutes from request to accepted and to done; escalated, cancelled and open counts."""
    return rt.kpi.tasks(since, until, by)


@router.get("/bed-waits")
def bed_waits(
    rt: RuntimeDep,
    _: Reader,
    since: From = None,
    until: To = None,
    by: Annotated[str, Query(pattern="^(site|day|site_day|system)$")] = "site",
) -> list[dict[str, Any]]:
    """Minutes from the decision to admit to a bed allocated and to arrival on the ward."""
    return rt.kpi.bed_waits(since, until, by)
