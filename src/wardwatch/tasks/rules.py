"""Pure task rules: the lifecycle, time limits and priorities. No I/O."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Status(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class Action(StrEnum):
    ACCEPT = "accept"
    START = "start"
    DONE = "done"
    CANCEL = "cancel"


OPEN: frozenset[Status] = frozenset({Status.REQUESTED, Status.ACCEPTED, Status.IN_PROGRESS})

#: From which states each action may be taken. Start and done may skip the steps before them
#: (a cleaner who starts at once has accepted; one who taps done has started), and every
#: skipped step is stamped with the same time, so KPIs never see a gap.
ALLOWED: dict[Action, frozenset[Status]] = {
    Action.ACCEPT: frozenset({Status.REQUESTED}),
    Action.START: frozenset({Status.REQUESTED, Status.ACCEPTED}),
    Action.DONE: frozenset({Status.REQUESTED, Status.ACCEPTED, Status.IN_PROGRESS}),
    Action.CANCEL: OPEN,
}

#: Priority names, most urgent first.
PRIORITIES = ("clean_next", "urgent", "routine")
PRIORITY_RANK = {name: i for i, name in enumerate(PRIORITIES)}

#: Minutes: expected duration, and the limits from creation to accepted and to done.
DEFAULT_LIMITS: dict[str, dict[str, int]] = {
    "cleaning/standard": {"expected": 30, "accept": 15, "finish": 60},
    "cleaning/infection": {"expected": 90, "accept": 15, "finish": 150},
    "transfer/porter": {"expected": 20, "accept": 10, "finish": 45},
    "other/general": {"expected": 30, "accept": 30, "finish": 120},
}
CLEANING_TYPES = ("standard", "infection")
TEAM_KINDS = ("housekeeping", "porters", "other")
#: Which team kind answers each task kind by default.
TEAM_FOR_KIND = {"cleaning": "housekeeping", "transfer": "porters", "other": "other"}


def refusal(status: Status, action: Action) -> str | None:
    """Why ``action`` cannot be taken on a task in ``status``, or None."""
    if status in ALLOWED[action]:
        return None
    if status == Status.DONE:
        return "the task is already done"
    if status == Status.CANCELLED:
        return "the task was cancelled"
    if action == Action.ACCEPT:
        return f"the task is already {status.value.replace('_', ' ')}"
    return f"cannot {action.value} a task that is {status.value.replace('_', ' ')}"


def limits_for(kind: str, type_: str, team_limits: dict[str, Any] | None) -> dict[str, int]:
    """The minutes for a task type: the team's own settings over the defaults."""
    key = f"{kind}/{type_}"
    base = dict(
        DEFAULT_LIMITS.get(key)
        or DEFAULT_LIMITS.get(f"{kind}/general")
        or DEFAULT_LIMITS["other/general"]
    )
    own = (team_limits or {}).get(key) or {}
    base.update({k: int(v) for k, v in own.items() if k in ("expected", "accept", "finish")})
    return base


def sort_key(priority: str, created_at: object) -> tuple[int, object]:
    """Queue order: most urgent priority first, then oldest first."""
    return (PRIORITY_RANK.get(priority, len(PRIORITIES)), created_at)
