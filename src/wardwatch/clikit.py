"""What every ``wardwatch`` sub-command shares: consoles, the CLI actor, errors, a runtime."""

from __future__ import annotations

import typer
from rich.console import Console

from wardwatch.config import Settings
from wardwatch.core.actor import Actor
from wardwatch.core.errors import ValidationFailed, WardWatchError
from wardwatch.runtime import Runtime

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
CLI_ACTOR = Actor(name="cli", role="admin")


def runtime() -> Runtime:
    return Runtime.build(Settings())


def fail(exc: WardWatchError) -> typer.Exit:
    """Print a service error for a person (each problem on its line); exit 2 for bad input."""
    err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
    for problem in getattr(exc, "problems", []):
        if problem not in exc.message:  # the message often quotes the first one
            err.print(f"  - {problem}", highlight=False, markup=False)
    return typer.Exit(code=2 if isinstance(exc, ValidationFailed) else 1)
