"""``wardwatch report ...``: KPIs from the event log as a table, CSV, JSON or a PNG chart."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wardwatch.clikit import err, fail, out, runtime
from wardwatch.core.errors import WardWatchError
from wardwatch.frontdoor.daily import DailyReport
from wardwatch.frontdoor.daily_render import to_csv, to_html
from wardwatch.frontdoor.days import local_day
from wardwatch.kpi.chart import turnaround_png

TEXT = ("site", "ward", "day", "team", "kind", "scope")
report_app = typer.Typer(help="Reports computed from the event log.", no_args_is_help=True)

FromOpt = Annotated[
    datetime | None, typer.Option("--from", help="start, e.g. 2026-01-05T00:00:00+00:00")
]
ToOpt = Annotated[datetime | None, typer.Option("--to", help="end (default: now)")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv or json")]


def _aware(value: datetime | None, rt_tz: Any) -> datetime | None:
    """Typer parses dates without a zone: read those as local time in the trust's zone."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=rt_tz)


def _emit(rows: list[dict[str, Any]], fmt: str, output: Path | None, title: str) -> None:
    if fmt == "json":
        text = json.dumps(rows, indent=2) + "\n"
    elif fmt == "csv":
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        text = buf.getvalue()
    elif fmt == "table":  # the figures a person reads; CSV and JSON carry every column
        names = [k for k in (rows[0] if rows else {}) if not k.endswith("_n")]
        table = Table(title=f"{title} (minutes)")
        for name in names or ["(no data)"]:
            label = name.replace("_median", " median").replace("_p90", " p90").replace("_", " ")
            table.add_column(label, justify="left" if name in TEXT else "right", overflow="fold")
        for row in rows:
            table.add_row(*("-" if row[k] is None else str(row[k]) for k in names))
        out.print(table)
        return
    else:
        raise typer.BadParameter("--format must be table, csv or json")
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        out.print(text, end="", markup=False, highlight=False)


def _run(
    fn: Callable[[Any], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    rt = runtime()
    try:
        return fn(rt)
    except WardWatchError as exc:
        raise fail(exc) from None
    finally:
        rt.close()


@report_app.command("turnaround")
def turnaround(
    since: FromOpt = None,
    until: ToOpt = None,
    by: Annotated[str, typer.Option(help="ward, site, day, site_day, ward_day, system")] = "ward",
    fmt: FormatOpt = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
    chart: Annotated[Path | None, typer.Option(help="also draw a PNG chart here")] = None,
) -> None:
    """Bed turnaround (discharge → available): median and 90th percentile minutes."""
    rows = _run(
        lambda rt: rt.kpi.turnaround(_aware(since, rt.kpi.tz), _aware(until, rt.kpi.tz), by)
    )
    _emit(rows, fmt, output, f"Bed turnaround by {by}")
    if chart is not None:
        turnaround_png(rows, chart, title=f"Bed turnaround by {by.replace('_', ' ')}")
        err.print(f"wrote {chart}")


@report_app.command("tasks")
def tasks(
    since: FromOpt = None,
    until: ToOpt = None,
    by: Annotated[str, typer.Option(help="team, kind, day, team_day, system")] = "team",
    fmt: FormatOpt = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Minutes from a task's request to accepted and to done, per team."""
    rows = _run(lambda rt: rt.kpi.tasks(_aware(since, rt.kpi.tz), _aware(until, rt.kpi.tz), by))
    _emit(rows, fmt, output, f"Task times by {by}")


@report_app.command("bed-waits")
def bed_waits(
    since: FromOpt = None,
    until: ToOpt = None,
    by: Annotated[str, typer.Option(help="site, day, site_day, system")] = "site",
    fmt: FormatOpt = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Minutes from the decision to admit to a bed allocated and to arrival."""
    rows = _run(lambda rt: rt.kpi.bed_waits(_aware(since, rt.kpi.tz), _aware(until, rt.kpi.tz), by))
    _emit(rows, fmt, output, f"Decision to admit → bed, by {by}")


@report_app.command("daily")
def daily(
    day: Annotated[
        datetime | None,
        typer.Option("--day", formats=["%Y-%m-%d"], help="local day (default: today)"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or html")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file")] = None,
) -> None:
    """The daily report: beds, occupancy, handovers, ED, DTA waits, long stays, OPEL."""
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {
        "json": lambda r: json.dumps(r, indent=2) + "\n",
        "csv": to_csv,
        "html": to_html,
    }
    if fmt not in renderers:
        raise typer.BadParameter("--format must be json, csv or html")
    rt = runtime()
    try:
        when = day.date() if day else local_day(rt.clock.now(), rt.frontdoor.tz)
        text = renderers[fmt](DailyReport.of(rt).build(when))
    except WardWatchError as exc:
        raise fail(exc) from None
    finally:
        rt.close()
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
