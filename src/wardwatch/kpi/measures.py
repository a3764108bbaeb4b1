"""KPI definitions over event-log rows: pure functions, no I/O.

Every figure is computed from the append-only event log alone, so it can be recomputed by
anyone from the same rows (the tests do exactly that) and replayed for any past period.

- **Bed turnaround**: from a bed becoming *awaiting clean* out of *occupied* (a discharge or
  a transfer out) to its next *available*; split into the wait before cleaning starts and
  the cleaning itself. An episode in which the bed is re-occupied before it is available
  (the discharge undone) is not a turnaround and is left out.
- **Task times**: from ``task.created`` to ``task.accepted`` and to ``task.done``.
- **Bed waits**: from a bed request's decision time (``decided_at``) to its allocation and
  to the patient's arrival.

Percentiles interpolate linearly between the nearest ranks (NumPy's default, and
``statistics.quantiles(method="inclusive")``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar


@dataclass(frozen=True, slots=True)
class Row:
    """The columns of an event-log row the KPIs need."""

    seq: int
    at: datetime
    type: str
    site_id: str | None
    ward_id: str | None
    bed_id: str | None
    from_state: str | None
    to_state: str | None
    data: dict[str, object]


@dataclass(slots=True)
class Turnaround:
    bed_id: str
    ward_id: str | None
    site_id: str | None
    dirty_at: datetime
    cleaning_at: datetime | None = None
    available_at: datetime | None = None

    @property
    def minutes(self) -> float:
        assert self.available_at is not None  # noqa: S101 -- only complete episodes reach here
        return (self.available_at - self.dirty_at).total_seconds() / 60

    @property
    def wait_minutes(self) -> float:
        end = self.cleaning_at or self.available_at
        assert end is not None  # noqa: S101
        return (end - self.dirty_at).total_seconds() / 60

    @property
    def cleaning_minutes(self) -> float:
        assert self.available_at is not None  # noqa: S101
        return (self.available_at - (self.cleaning_at or self.available_at)).total_seconds() / 60


@dataclass(slots=True)
class TaskTimes:
    task_id: str
    team: str
    kind: str
    site_id: str | None
    created_at: datetime
    accepted_at: datetime | None = None
    done_at: datetime | None = None
    escalated: bool = False
    cancelled: bool = False


@dataclass(slots=True)
class BedWait:
    request_id: str
    site_id: str | None
    decided_at: datetime
    allocated_at: datetime | None = None
    arrived_at: datetime | None = None
    extra: dict[str, object] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def turnarounds(rows: Iterable[Row]) -> list[Turnaround]:
    """Complete turnaround episodes, in the order they began."""
    open_: dict[str, Turnaround] = {}
    done: list[Turnaround] = []
    for r in rows:
        if r.bed_id is None or r.to_state is None:
            continue
        if r.from_state == "occupied" and r.to_state == "awaiting_clean":
            open_[r.bed_id] = Turnaround(r.bed_id, r.ward_id, r.site_id, r.at)
            continue
        ep = open_.get(r.bed_id)
        if ep is None:
            continue
        if r.to_state == "cleaning" and ep.cleaning_at is None:
            ep.cleaning_at = r.at
        elif r.to_state == "available":
            ep.available_at = r.at
            done.append(open_.pop(r.bed_id))
        elif r.to_state == "occupied":
            del open_[r.bed_id]  # re-occupied before it was ever available
    done.sort(key=lambda t: t.dirty_at)
    return done


def task_times(rows: Iterable[Row]) -> list[TaskTimes]:
    found: dict[str, TaskTimes] = {}
    for r in rows:
        if not r.type.startswith("task."):
            continue
        task_id = str(r.data.get("task", ""))
        if r.type == "task.created":
            found[task_id] = TaskTimes(
                task_id, str(r.data.get("team")), str(r.data.get("kind")), r.site_id, r.at
            )
            continue
        t = found.get(task_id)
        if t is None:
            continue
        if r.type == "task.accepted":
            t.accepted_at = r.at
        elif r.type == "task.done":
            t.done_at = r.at
        elif r.type == "task.escalated":
            t.escalated = True
        elif r.type == "task.cancelled":
            t.cancelled = True
    return list(found.values())


def bed_waits(rows: Iterable[Row]) -> list[BedWait]:
    found: dict[str, BedWait] = {}
    for r in rows:
        if not r.type.startswith("bed_request."):
            continue
        req = str(r.data.get("request", ""))
        if r.type == "bed_request.created":
            decided = datetime.fromisoformat(str(r.data["decided_at"]))
            found[req] = BedWait(req, r.site_id, decided)
            continue
        w = found.get(req)
        if w is None:
            continue
        if r.type == "bed_request.allocated":
            w.allocated_at = r.at
        elif r.type == "bed_request.bed_lost":
            w.allocated_at = None
        elif r.type == "bed_request.arrived":
            w.arrived_at = r.at
    return list(found.values())


Key = tuple[str, ...]
T = TypeVar("T")


def summarise(
    items: Iterable[T],
    key: Callable[[T], Key],
    measures: dict[str, Callable[[T], float | None]],
    counts: dict[str, Callable[[T], bool]] | None = None,
) -> dict[Key, dict[str, float | None]]:
    """Per group: a count, the median and 90th percentile of each measure (minutes; None
    where a group has no value for it), and how many members each of ``counts`` holds for."""
    groups: dict[Key, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    out: dict[Key, dict[str, float | None]] = {}
    for k in sorted(groups):
        members = groups[k]
        stats: dict[str, float | None] = {"count": len(members)}
        for name, fn in measures.items():
            values = [v for v in (fn(m) for m in members) if v is not None]
            stats[f"{name}_n"] = len(values)
            stats[f"{name}_median"] = round(percentile(values, 50), 1) if values else None
            stats[f"{name}_p90"] = round(percentile(values, 90), 1) if values else None
        for name, test in (counts or {}).items():
            stats[name] = sum(1 for member in members if test(member))
        out[k] = stats
    return out
