"""Ambulance handovers: the only writer of the ``handovers`` table.

Each feed message is applied in its own transaction, so one bad message is refused with its
reason and the rest of the batch still lands. A message the ambulance service sends twice
(same step, same time) is a repeat: acknowledged, nothing changed. Anything that would
contradict what is already recorded (a second arrival at another time, a handover before the
arrival, a time in the future) is refused and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wardwatch.capacity.lookups import find_or_create_patient, site_by_code
from wardwatch.capacity.models import Site
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed, WardWatchError
from wardwatch.core.ids import new_id
from wardwatch.db.session import Database, Tx
from wardwatch.frontdoor.checks import check_time
from wardwatch.frontdoor.measures import (
    RELEASE_AFTER,
    HandoverFigures,
    HandoverTimes,
    breaches,
    handover_figures,
    handover_minutes,
    lost_minutes,
)
from wardwatch.frontdoor.models import Handover
from wardwatch.frontdoor.schemas import FeedResult, HandoverMessage, HandoverRead

#: Crews waiting this long are reported to the control centre (minutes).
ALERT_AT = (30, 45)
OPEN = ("expected", "waiting")
EVENT = {
    "pre_alert": "handover.pre_alerted",
    "arrival": "handover.arrived",
    "handover": "handover.handed_over",
    "clear": "handover.cleared",
    "cancel": "handover.cancelled",
}


class HandoverService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # --- the feed -------------------------------------------------------------------------

    def feed(self, messages: Sequence[HandoverMessage], actor: Actor) -> list[FeedResult]:
        """Apply each message in turn, each in its own transaction."""
        results: list[FeedResult] = []
        for i, msg in enumerate(messages):
            try:
                row, repeat = self.apply(msg, actor)
            except WardWatchError as exc:
                results.append(FeedResult(index=i, ok=False, error=exc.message))
            else:
                results.append(
                    FeedResult(
                        index=i, ok=True, handover_id=row.id, status=row.status, repeat=repeat
                    )
                )
        return results

    def apply(self, msg: HandoverMessage, actor: Actor) -> tuple[HandoverRead, bool]:
        """Apply one message; returns the handover and whether the message was a repeat."""
        now = self.clock.now()
        check_time(msg.at, "at", now)
        if msg.expected_at is not None and msg.expected_at < msg.at - timedelta(hours=1):
            raise ValidationFailed("expected_at is before the pre-alert was sent")
        with self.db.transaction() as tx:
            s = tx.session
            row = s.scalars(
                select(Handover)
                .where(Handover.service == msg.service, Handover.incident == msg.incident)
                .with_for_update()
            ).first()
            site = site_by_code(s, msg.site) if msg.site else None
            step = getattr(self, f"_{msg.type}")
            row, repeat = step(tx, row, site, msg, actor)
            if not repeat:
                row.updated_at = now
                self._record(tx, row, EVENT[msg.type], actor, msg)
            read = self._read(row, now, s.get_one(Site, row.site_id))
        return read, repeat

    def _new(self, tx: Tx, site: Site, msg: HandoverMessage, status: str) -> Handover:
        now = self.clock.now()
        self._vehicle_free(tx.session, msg)
        row = Handover(
            id=new_id("hov"),
            site_id=site.id,
            service=msg.service,
            incident=msg.incident,
            vehicle=msg.vehicle,
            category=msg.category,
            patient_id=(
                find_or_create_patient(tx.session, msg.patient).id if msg.patient else None
            ),
            status=status,
            alerted_minutes=0,
            created_at=now,
            updated_at=now,
        )
        tx.session.add(row)
        return row

    def _vehicle_free(self, s: Session, msg: HandoverMessage) -> None:
        """A vehicle waits at one front door at a time."""
        if not msg.vehicle or msg.type != "arrival":
            return
        other = s.scalars(
            select(Handover).where(
                Handover.service == msg.service,
                Handover.vehicle == msg.vehicle,
                Handover.status == "waiting",
                Handover.incident != msg.incident,
            )
        ).first()
        if other is not None:
            raise Conflict(
                f"vehicle {msg.vehicle} is still waiting to hand over incident "
                f"{other.incident}: send its handover first"
            )

    def _pre_alert(
        self, tx: Tx, row: Handover | None, site: Site | None, msg: HandoverMessage, actor: Actor
    ) -> tuple[Handover, bool]:
        assert site is not None  # noqa: S101 -- the schema requires the site
        if row is None:
            row = self._new(tx, site, msg, "expected")
        elif row.status != "expected":
            raise Conflict(f"incident {msg.incident} has already {_done(row)}: no pre-alert now")
        elif row.pre_alert_at == msg.at and row.site_id == site.id:
            return row, True
        row.site_id = site.id
        row.pre_alert_at = msg.at
        row.expected_at = msg.expected_at or row.expected_at
        row.vehicle = msg.vehicle or row.vehicle
        row.category = msg.category or row.category
        return row, False

    def _arrival(
        self, tx: Tx, row: Handover | None, site: Site | None, msg: HandoverMessage, actor: Actor
    ) -> tuple[Handover, bool]:
        assert site is not None  # noqa: S101 -- the schema requires the site
        if row is not None and row.arrived_at is not None:
            if row.arrived_at == msg.at and row.site_id == site.id:
                return row, True
            raise Conflict(
                f"incident {msg.incident} already arrived at {row.arrived_at.isoformat()}: "
                f"a crew arrives once (cancel the incident if this is a new job)"
            )
        if row is not None and row.status == "cancelled":
            raise Conflict(f"incident {msg.incident} was cancelled: {row.cancel_reason}")
        if row is None:
            row = self._new(tx, site, msg, "waiting")
        else:
            self._vehicle_free(tx.session, msg)
            if row.pre_alert_at is not None and msg.at < row.pre_alert_at:
                raise ValidationFailed("arrival is before the pre-alert")
        row.site_id = site.id
        row.status = "waiting"
        row.arrived_at = msg.at
        row.vehicle = msg.vehicle or row.vehicle
        row.category = msg.category or row.category
        return row, False

    def _handover(
        self, tx: Tx, row: Handover | None, site: Site | None, msg: HandoverMessage, actor: Actor
    ) -> tuple[Handover, bool]:
        row = _existing(row, msg)
        if row.handover_at is not None:
            if row.handover_at == msg.at:
                return row, True
            raise Conflict(
                f"incident {msg.incident} was already handed over at {row.handover_at.isoformat()}"
            )
        if row.arrived_at is None or row.status != "waiting":
            raise Conflict(f"incident {msg.incident} has not arrived: no handover before arrival")
        if msg.at < row.arrived_at:
            raise ValidationFailed(
                f"handover at {msg.at.isoformat()} is before the arrival at "
                f"{row.arrived_at.isoformat()}"
            )
        row.status, row.handover_at = "handed_over", msg.at
        return row, False

    def _clear(
        self, tx: Tx, row: Handover | None, site: Site | None, msg: HandoverMessage, actor: Actor
    ) -> tuple[Handover, bool]:
        row = _existing(row, msg)
        if row.clear_at is not None:
            if row.clear_at == msg.at:
                return row, True
            raise Conflict(f"incident {msg.incident} is already clear")
        if row.handover_at is None:
            raise Conflict(f"incident {msg.incident} has not been handed over: cannot clear")
        if msg.at < row.handover_at:
            raise ValidationFailed("vehicle clear is before the handover")
        row.status, row.clear_at = "clear", msg.at
        return row, False

    def _cancel(
        self, tx: Tx, row: Handover | None, site: Site | None, msg: HandoverMessage, actor: Actor
    ) -> tuple[Handover, bool]:
        row = _existing(row, msg)
        if row.status == "cancelled":
            return row, True
        if row.status not in OPEN:
            raise Conflict(f"incident {msg.incident} has already {_done(row)}: cannot cancel")
        row.status, row.cancelled_at, row.cancel_reason = "cancelled", msg.at, msg.reason
        return row, False

    def _record(
        self, tx: Tx, row: Handover, event: str, actor: Actor, msg: HandoverMessage | None
    ) -> None:
        site = tx.session.get_one(Site, row.site_id)
        data: dict[str, Any] = {
            "handover": row.id,
            "service": row.service,
            "incident": row.incident,
            "vehicle": row.vehicle,
            "category": row.category,
            "status": row.status,
            "site": site.code,
        }
        for name in ("pre_alert_at", "expected_at", "arrived_at", "handover_at", "clear_at"):
            value = getattr(row, name)
            if value is not None:
                data[name] = value.isoformat()
        if row.arrived_at is not None and row.handover_at is not None:
            data["minutes"] = round(
                handover_minutes(row.arrived_at, row.handover_at, row.arrived_at), 2
            )
        if row.cancel_reason:
            data["reason"] = row.cancel_reason
        tx.record(
            event,
            at=msg.at if msg is not None else self.clock.now(),
            actor=actor,
            site_id=site.id,
            site_code=site.code,
            data=data,
        )

    # --- delays ---------------------------------------------------------------------------

    def check_delays(self, actor: Actor) -> list[HandoverRead]:
        """Tell the control centre of crews waiting past 30 and 45 minutes (once each)."""
        now = self.clock.now()
        alerted: list[HandoverRead] = []
        with self.db.transaction() as tx:
            rows = tx.session.scalars(
                select(Handover)
                .where(
                    Handover.status == "waiting",
                    Handover.alerted_minutes < ALERT_AT[-1],
                    Handover.arrived_at <= now - timedelta(minutes=ALERT_AT[0]),
                )
                .with_for_update()
            ).all()
            for row in rows:
                assert row.arrived_at is not None  # noqa: S101 -- waiting rows have arrived
                minutes = handover_minutes(row.arrived_at, None, now)
                due = max((m for m in ALERT_AT if minutes >= m), default=0)
                if due <= row.alerted_minutes:
                    continue
                row.alerted_minutes = due
                site = tx.session.get_one(Site, row.site_id)
                tx.record(
                    "handover.delayed",
                    at=now,
                    actor=actor,
                    site_id=site.id,
                    site_code=site.code,
                    data={
                        "handover": row.id,
                        "service": row.service,
                        "incident": row.incident,
                        "vehicle": row.vehicle,
                        "site": site.code,
                        "minutes": due,
                        "waited": round(minutes, 1),
                        "arrived_at": row.arrived_at.isoformat(),
                        "release": due >= 45,
                        "severity": "release" if due >= 45 else "delay",
                    },
                )
                alerted.append(self._read(row, now, site))
        return alerted

    # --- reading --------------------------------------------------------------------------

    def get(self, handover_id: str) -> HandoverRead:
        with self.db.read() as s:
            row = s.get(Handover, handover_id)
            if row is None:
                raise NotFound(f"no handover with id {handover_id!r}")
            return self._read(row, self.clock.now(), s.get_one(Site, row.site_id))

    def list(
        self,
        *,
        site: str | None = None,
        open_only: bool = True,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[HandoverRead]:
        """Handovers, longest waiting first: the open ones, or those that arrived in a window."""
        now = self.clock.now()
        with self.db.read() as s:
            q = select(Handover, Site).join(Site, Site.id == Handover.site_id)
            if site is not None:
                q = q.where(Site.code == site_by_code(s, site).code)
            if open_only:
                q = q.where(Handover.status.in_(OPEN))
            if since is not None:
                q = q.where(Handover.arrived_at >= since)
            if until is not None:
                q = q.where(Handover.arrived_at < until)
            rows = s.execute(q.limit(limit)).all()
            out = [self._read(h, now, site_row) for h, site_row in rows]
        out.sort(key=lambda r: (r.arrived_at is None, r.arrived_at or r.expected_at or now))
        return out

    def figures(
        self, *, since: datetime, until: datetime, site: str | None = None
    ) -> HandoverFigures:
        """Figures over the handovers that arrived in [since, until), waits counted to now."""
        now = self.clock.now()
        with self.db.read() as s:
            q = select(Handover.arrived_at, Handover.handover_at).where(
                Handover.arrived_at >= since,
                Handover.arrived_at < until,
                Handover.status != "cancelled",
            )
            if site is not None:
                q = q.where(Handover.site_id == site_by_code(s, site).id)
            rows: Iterable[Any] = s.execute(q).all()
            return handover_figures(
                (HandoverTimes(a, h) for a, h in rows), min(now, until + timedelta(days=1))
            )

    def _read(self, row: Handover, now: datetime, site: Site) -> HandoverRead:
        minutes = (
            handover_minutes(row.arrived_at, row.handover_at, now)
            if row.arrived_at is not None and row.status != "cancelled"
            else None
        )
        return HandoverRead(
            id=row.id,
            site=site.code,
            site_name=site.name,
            service=row.service,
            incident=row.incident,
            vehicle=row.vehicle,
            category=row.category,
            status=row.status,
            pre_alert_at=row.pre_alert_at,
            expected_at=row.expected_at,
            arrived_at=row.arrived_at,
            handover_at=row.handover_at,
            clear_at=row.clear_at,
            cancel_reason=row.cancel_reason,
            minutes=None if minutes is None else round(minutes, 1),
            minutes_lost=0.0 if minutes is None else round(lost_minutes(minutes), 1),
            breaches=[] if minutes is None else breaches(minutes),
            release_due_at=(
                row.arrived_at + RELEASE_AFTER
                if row.arrived_at is not None and row.status == "waiting"
                else None
            ),
            alerted_minutes=row.alerted_minutes,
        )


def _existing(row: Handover | None, msg: HandoverMessage) -> Handover:
    if row is None:
        raise NotFound(f"no handover for {msg.service} incident {msg.incident}: send arrival first")
    return row


def _done(row: Handover) -> str:
    return {
        "waiting": "arrived",
        "handed_over": "been handed over",
        "clear": "cleared",
        "cancelled": "been cancelled",
    }.get(row.status, row.status)
