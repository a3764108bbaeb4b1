"""``GET /api/reports/daily``: the daily report as JSON, CSV or a printable HTML page."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.frontdoor.daily import DailyReport
from wardwatch.frontdoor.daily_render import to_csv, to_html
from wardwatch.frontdoor.days import local_day

router = APIRouter(prefix="/api/reports", tags=["reports"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]


@router.get(
    "/daily",
    response_model=None,
    responses={
        200: {
            "content": {"application/json": {}, "text/csv": {}, "text/html": {}},
            "description": "the report in the format asked for",
        }
    },
)
def daily(
    rt: RuntimeDep,
    _: Reader,
    day: Annotated[
        date | None, Query(description="local day (YYYY-MM-DD); today if absent")
    ] = None,
    fmt: Annotated[
        str, Query(alias="format", pattern="^(json|csv|html)$", description="json, csv or html")
    ] = "json",
) -> Response:
    """Beds and G&A occupancy at 08:00 against the target, escalation beds, ambulance
    handovers and hours lost, ED 4-hour and 12-hour figures, DTA waits, long stays, patients
    without criteria to reside and OPEL, per site and for the system (docs/daily-report.md).
    Today is reported up to now and marked ``partial``; a future day is refused (422)."""
    report: dict[str, Any] = DailyReport.of(rt).build(
        day or local_day(rt.clock.now(), rt.frontdoor.tz)
    )
    if fmt == "csv":
        name = f"wardwatch-daily-{report['day']}.csv"
        return Response(
            to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if fmt == "html":
        return HTMLResponse(to_html(report))
    return JSONResponse(report)
