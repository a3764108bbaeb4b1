"""Local days: a report's "day" is midnight to midnight in the system's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which ``day`` starts and the next day starts (23 or 25 h in
    the weeks the clocks change)."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()
