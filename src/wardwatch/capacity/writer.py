"""The lowest layer of bed moves: write a bed's state and its event, on the bed's own clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from wardwatch.capacity import counts
from wardwatch.capacity.models import Bed
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import ValidationFailed
from wardwatch.db.session import Tx

S = BedState


class BedWriter:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def set_state(
        self,
        tx: Tx,
        bed: Bed,
        target: BedState,
        actor: Actor,
        event_type: str,
        *,
        stay_id: str | None = None,
        log_stay_id: str | None = None,
        reason: str | None = None,
        data: Mapping[str, object] | None = None,
        at: datetime | None = None,
    ) -> datetime:
        """Write a bed's new state and its event; returns the time recorded."""
        when = self.when(bed, at)
        previous, since = bed.state, bed.state_since
        if previous != target.value:
            counts.add(tx, bed.ward_id, previous, -1)
            counts.add(tx, bed.ward_id, target.value, +1)
        bed.state = target.value
        bed.state_since = when
        bed.state_reason = reason if target in (S.BLOCKED, S.CLOSED) else None
        bed.stay_id = stay_id
        payload: dict[str, object] = {
            "bed": bed.code,
            "seconds_in_previous": max(0.0, (when - since).total_seconds()),
        }
        payload.update(data or {})
        self.log(
            tx,
            bed,
            event_type,
            actor,
            at=when,
            stay_id=stay_id or log_stay_id,
            from_state=previous,
            to_state=target.value,
            reason=reason,
            data=payload,
        )
        return when

    def log(
        self,
        tx: Tx,
        bed: Bed,
        event_type: str,
        actor: Actor,
        *,
        at: datetime,
        stay_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> None:
        tx.record(
            event_type,
            at=at,
            actor=actor,
            site_id=bed.ward.site_id,
            site_code=bed.ward.site.code,
            ward_id=bed.ward_id,
            ward_code=bed.ward.code,
            bed_id=bed.id,
            stay_id=stay_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            data=dict(data or {"bed": bed.code}),
        )

    def when(self, bed: Bed, at: datetime | None) -> datetime:
        """The time to record a change of ``bed``: ``at`` (when it happened) or now, never in
        the future and never before the bed's last change (its clock never runs backwards,
        even if this process's clock is behind another's)."""
        if at is not None and at.tzinfo is None:
            raise ValidationFailed("event times must carry a time zone")
        now = self.clock.now()
        return max(bed.state_since, now if at is None else min(now, at))
