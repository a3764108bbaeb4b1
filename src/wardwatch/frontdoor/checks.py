"""The check the front door's feeds share: whether a message's time is believable
(an ambulance service or an ED system with a wrong clock must not write
tomorrow's arrivals, nor rewrite last month's)."""

from __future__ import annotations

from datetime import datetime, timedelta

from wardwatch.core.errors import ValidationFailed

#: A sender's clock may run this far ahead of ours.
FUTURE_SLACK = timedelta(minutes=1)
#: Older than this is a mistake, not a late message.
TOO_OLD = timedelta(days=7)


def check_time(at: datetime, name: str, now: datetime) -> None:
    """Refuse a time in the future (beyond the slack) or more than :data:`TOO_OLD` ago."""
    if at > now + FUTURE_SLACK:
        raise ValidationFailed(f"{name} {at.isoformat()} is in the future")
    if at < now - TOO_OLD:
        raise ValidationFailed(f"{name} {at.isoformat()} is more than 7 days ago")
