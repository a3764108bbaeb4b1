"""``wardwatch notify``: check a rules file, list notifications, retry dead letters."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wardwatch.clikit import CLI_ACTOR, err, fail, out
from wardwatch.config import Settings
from wardwatch.core.errors import WardWatchError
from wardwatch.notify.config import DEFAULT_RULES_YAML, WebhookChannel, load_rules
from wardwatch.runtime import Runtime

notify_app = typer.Typer(
    help="Notifications: rules files, delivery status, dead letters.", no_args_is_help=True
)


@notify_app.command("check")
def check(file: Path) -> None:
    """Validate a rules file (exit 2 with each problem's line if it is wrong)."""
    try:
        config = load_rules(file)
    except WardWatchError as exc:
        raise fail(exc) from None
    out.print(f"{file}: {len(config.channels)} channels, {len(config.rules)} rules: OK")
    for name, channel in config.channels.items():
        if isinstance(channel, WebhookChannel) and not os.environ.get(channel.secret_env):
            err.print(
                f"warning: channel {name}: {channel.secret_env} is not set here; "
                "the service needs it to sign deliveries"
            )


@notify_app.command("defaults")
def defaults() -> None:
    """Print the built-in rules (used when WARDWATCH_NOTIFY_FILE is unset)."""
    out.print(DEFAULT_RULES_YAML, end="", markup=False, highlight=False)


@notify_app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="pending, sending, sent, failed or dead")
    ] = None,
    channel: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Notifications and their delivery status, newest first."""
    rt = Runtime.build(Settings())
    try:
        rows = rt.notify.list(status=status, channel=channel, limit=limit)
    except WardWatchError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    table = Table(title=f"{len(rows)} notifications")
    for col in ("id", "created", "rule", "channel", "to", "status", "tries", "last error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.id,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.rule,
            r.channel,
            r.audience,
            r.status,
            str(r.attempts),
            r.last_error or "",
        )
    out.print(table)


@notify_app.command("retry")
def retry(notification_id: str) -> None:
    """Send a dead notification again (the running service delivers it)."""
    rt = Runtime.build(Settings())
    try:
        row = rt.notify.retry(notification_id, CLI_ACTOR)
    except WardWatchError as exc:
        raise fail(exc) from None
    out.print(f"{row.id}: {row.status}; the running service will deliver it")
