"""``wardwatch opel``: levels and their parameters now, their history, divert suggestions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from wardwatch.clikit import fail, out, runtime
from wardwatch.core.errors import WardWatchError
from wardwatch.frontdoor.divert import suggestions

opel_app = typer.Typer(
    help="OPEL levels per acute site and for the system; divert suggestions.",
    no_args_is_help=True,
)


@opel_app.command("show")
def show() -> None:
    """Each acute site's level now, with every parameter's value and band, and the system."""
    rt = runtime()
    try:
        snap = rt.opel.compute()
    except WardWatchError as exc:
        raise fail(exc) from None
    finally:
        rt.close()
    names: list[str] = []
    for site in snap.sites:
        names += [p.label for p in site.parameters if p.label not in names]
    table = Table(
        "site", "OPEL", "score", "since (UTC)", *names, title=f"OPEL at {snap.at:%H:%M} UTC"
    )
    for site in snap.sites:
        cells = {p.label: _cell(p.value, p.unit, p.band) for p in site.parameters}
        since = f"{site.since:%Y-%m-%d %H:%M}" if site.since else "-"
        table.add_row(
            f"{site.code} {site.name}",
            str(site.level),
            f"{site.score:.1f}",
            since,
            *(cells.get(n, "") for n in names),
        )
    system = snap.system
    table.add_row("SYSTEM", str(system.level), f"{system.score:.1f}", "", *("" for _ in names))
    out.print(table)
    for site in snap.sites:
        out.print(f"[bold]{site.code}[/]: {site.why}", highlight=False)
    out.print(f"[bold]SYSTEM[/]: {system.why}", highlight=False)


def _cell(value: float | None, unit: str, band: int | None) -> str:
    if value is None or band is None:
        return "no data"
    shown = f"{value:.1f}{unit}" if unit == "%" else f"{value:.0f} {unit}"
    return f"{shown} [{band}]"


@opel_app.command("history")
def history(
    site: Annotated[
        str | None, typer.Option(help="a site code, or 'system'; every scope if absent")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO time with a zone")] = None,
    until: Annotated[datetime | None, typer.Option(help="ISO time with a zone")] = None,
) -> None:
    """Periods at each level, oldest first, with the parameters that drove each change."""
    rt = runtime()
    try:
        rows = rt.opel.history(site, since, until)
    except WardWatchError as exc:
        raise fail(exc) from None
    finally:
        rt.close()
    table = Table("scope", "from (UTC)", "until", "OPEL", "was", "score", "driven by")
    for row in rows:
        table.add_row(
            row["scope"],
            row["at"][:16],
            (row["until"] or "now")[:16],
            str(row["level"]),
            "-" if row["previous"] is None else str(row["previous"]),
            f"{row['score']:.1f}",
            _drivers(row["parameters"]),
        )
    out.print(table)


def _drivers(parameters: list[dict[str, object]]) -> str:
    """The parameters above band 1 (a site's row) or the sites (the system's row)."""
    if parameters and "site" in parameters[0]:
        return ", ".join(f"{p['site']} {p['level']}" for p in parameters)
    above = [p for p in parameters if isinstance(p.get("band"), int) and p["band"] != 1]
    return ", ".join(f"{p['label']} {p['value']} [{p['band']}]" for p in above) or "-"


@opel_app.command("divert")
def divert(site: Annotated[str, typer.Argument(help="the site under pressure")]) -> None:
    """Nearby sites that could take ambulances from SITE, with reasons; and the others."""
    rt = runtime()
    try:
        advice = suggestions(rt.opel, site)
    except WardWatchError as exc:
        raise fail(exc) from None
    finally:
        rt.close()
    for reason in advice.reasons:
        out.print(f"{advice.site}: {reason}", highlight=False)
    if not advice.under_pressure:
        return
    table = Table("suggested", "km", "OPEL", "beds", "mean handover", "why")
    for s in advice.suggestions:
        mean = "-" if s.mean_handover_minutes is None else f"{s.mean_handover_minutes:.0f} min"
        table.add_row(
            f"{s.site} {s.name}",
            f"{s.distance_km:.1f}",
            str(s.level),
            str(s.available_beds),
            mean,
            "; ".join(s.reasons),
        )
    out.print(table)
    for r in advice.rejected:
        out.print(f"not {r.site} {r.name}: {r.reason}", highlight=False)


@opel_app.command("check")
def check() -> None:
    """Record levels now and notify changes (the server does this every
    ``escalation_interval_seconds``)."""
    rt = runtime()
    try:
        changes = rt.opel.check()
    except WardWatchError as exc:
        raise fail(exc) from None
    finally:
        rt.close()
    for c in changes:
        out.print(c.summary, highlight=False)
    out.print(f"{len(changes)} level(s) recorded")
