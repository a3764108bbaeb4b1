"""``wardwatch teams`` and ``wardwatch tasks``: team settings from a file; queues at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wardwatch.clikit import CLI_ACTOR, fail, out, runtime
from wardwatch.core.errors import WardWatchError
from wardwatch.tasks import teams as team_files

teams_app = typer.Typer(help="Teams: time limits and supervisors.", no_args_is_help=True)
tasks_app = typer.Typer(help="Team tasks and escalations.", no_args_is_help=True)


@teams_app.command("load")
def teams_load(file: Path) -> None:
    """Create or update teams from a YAML file (see examples/teams.yaml). All or nothing."""
    rt = runtime()
    try:
        loaded = rt.tasks.load_teams(team_files.parse_file(file), CLI_ACTOR)
    except WardWatchError as exc:
        raise fail(exc) from None
    finally:
        rt.close()
    out.print(f"{len(loaded)} teams now configured")


@teams_app.command("show")
def teams_show() -> None:
    """Every team with its time limits (minutes: expected / accept / finish)."""
    rt = runtime()
    try:
        rows = rt.tasks.teams()
    finally:
        rt.close()
    table = Table("team", "kind", "site", "supervisor", "limits")
    for t in rows:
        limits = ", ".join(
            f"{k}: {v['expected']}/{v['accept']}/{v['finish']}" for k, v in t.limits.items()
        )
        table.add_row(t.code, t.kind, t.site or "-", t.supervisor_email or "-", limits)
    out.print(table)


@tasks_app.command("list")
def tasks_list(
    team: Annotated[str | None, typer.Option(help="team code")] = None,
    site: Annotated[str | None, typer.Option(help="site code")] = None,
) -> None:
    """Open tasks in queue order (clean next first, then oldest)."""
    rt = runtime()
    try:
        rows = rt.tasks.list_tasks(team=team, site=site)
    finally:
        rt.close()
    table = Table("priority", "team", "task", "status", "waiting", "due", "esc")
    for t in rows:
        due = t.accept_by if t.status == "requested" else t.finish_by
        table.add_row(
            t.priority.replace("_", " "),
            t.team,
            t.description,
            t.status.replace("_", " "),
            f"{t.waiting_minutes:.0f} min",
            ("OVERDUE " if t.overdue else "") + due.astimezone(rt.kpi.tz).strftime("%H:%M"),
            str(t.escalation_level or ""),
        )
    out.print(table)


@tasks_app.command("escalations")
def escalations(
    all_: Annotated[bool, typer.Option("--all", help="include answered ones")] = False,
) -> None:
    """Escalations still waiting for someone to acknowledge them."""
    rt = runtime()
    try:
        rows = rt.tasks.list_escalations(open_only=not all_)
    finally:
        rt.close()
    table = Table("raised", "level", "to", "team", "reason", "acknowledged")
    for e in rows:
        table.add_row(
            e.raised_at.astimezone(rt.kpi.tz).strftime("%d %b %H:%M"),
            str(e.level),
            e.target,
            e.team,
            e.reason,
            e.acknowledged_by or "-",
        )
    out.print(table)
