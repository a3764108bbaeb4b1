"""``wardwatch vw``: the virtual-ward caseload, open alerts and refused readings at a glance."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from wardwatch.clikit import out, runtime

vw_app = typer.Typer(
    help="Virtual wards: caseload, alerts, refused readings.", no_args_is_help=True
)


def _age(minutes: float | None) -> str:
    if minutes is None:
        return "-"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


@vw_app.command("caseload")
def caseload(ward: Annotated[str | None, typer.Option(help="ward code")] = None) -> None:
    """Patients on virtual wards, most at risk first, with the age of their latest NEWS2."""
    rt = runtime()
    try:
        rows = rt.virtualward.caseload(ward=ward)
    finally:
        rt.close()
    table = Table("patient", "place", "NEWS2", "risk", "age", "open alerts", "devices")
    for e in rows:
        latest = e.latest
        if latest is None:
            news, risk, age = "-", "no data", None
        elif latest.partial:
            news, risk, age = f"≥{latest.partial_total} partial", latest.risk, latest.age_minutes
        else:
            news, risk, age = str(latest.total), latest.risk, latest.age_minutes
        alerts = ", ".join(
            f"{a.severity} {a.kind} ({a.minutes_left:.0f} min)" for a in e.open_alerts
        )
        kit = ", ".join(
            f"{d.serial} {d.battery_pct}%" if d.battery_pct is not None else d.serial
            for d in e.devices
        )
        table.add_row(e.patient, e.bed, news, risk, _age(age), alerts or "-", kit or "-")
    out.print(table)


@vw_app.command("alerts")
def alerts(
    status: Annotated[
        str, typer.Option(help="open, new, acknowledged, actioned, resolved, all")
    ] = "open",
    team: Annotated[str | None, typer.Option(help="team code")] = None,
) -> None:
    """Alerts, most severe and most overdue first."""
    rt = runtime()
    try:
        rows = rt.virtualward.alerts(status=None if status == "all" else status, team=team)
    finally:
        rt.close()
    table = Table("alert", "patient", "severity", "kind", "status", "left", "level", "summary")
    for a in rows:
        table.add_row(
            a.id,
            a.patient,
            a.severity,
            a.kind,
            a.status,
            f"{a.minutes_left:.0f} min",
            str(a.level),
            a.summary,
        )
    out.print(table)


@vw_app.command("rejected")
def rejected(
    source: Annotated[str | None, typer.Option(help="mqtt, fhir, hl7 or api")] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000)] = 50,
) -> None:
    """Readings refused (newest first), with the reason and what was sent."""
    rt = runtime()
    try:
        rows = rt.virtualward.rejected(source=source, limit=limit)
    finally:
        rt.close()
    table = Table("when", "source", "sender", "reason", "payload")
    for r in rows:
        table.add_row(
            r.received_at.isoformat(timespec="seconds"),
            r.source,
            r.sender or "-",
            r.reason,
            r.payload[:80],
        )
    out.print(table)


@vw_app.command("check")
def check() -> None:
    """Escalate unanswered alerts and raise missed-reading alerts now (the server does this
    every ``escalation_interval_seconds``)."""
    rt = runtime()
    try:
        changed = rt.virtualward.check_due()
    finally:
        rt.close()
    out.print(f"{len(changed)} alerts raised or escalated")
