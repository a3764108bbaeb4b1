"""Claiming due notifications and recording what became of each attempt (database side).

Claiming is one short transaction: due rows become ``sending`` with a lease, so several
workers never send the same row (PostgreSQL skips rows another worker has locked; SQLite
serialises writers). A worker that dies mid-send leaves its rows ``sending``; once the lease
has passed they are due again. Recording a result checks that the row is still this
worker's claim, so a late answer never overwrites a newer attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select

from wardwatch.db.session import Database, Tx
from wardwatch.notify.channels import Outgoing
from wardwatch.notify.models import DEAD, DUE, FAILED, SENDING, SENT, Notification

log = logging.getLogger(__name__)
N = Notification
#: How long a claim lasts: longer than any channel's timeout (webhooks ≤ 60 s, SMTP ≤ 120 s).
LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Claim:
    item: Outgoing
    attempts: int  # including this one


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(N.status.in_(DUE), N.next_attempt_at <= now),
        and_(N.status == SENDING, N.claimed_until < now),
    )


def any_due(db: Database, now: datetime) -> bool:
    with db.read() as s:
        return s.scalar(select(N.seq).where(_due(now)).limit(1)) is not None


def claim(db: Database, now: datetime, limit: int) -> list[Claim]:
    """Take up to ``limit`` due notifications for this worker, oldest due first."""
    if limit <= 0 or not any_due(db, now):  # no write transaction when idle
        return []
    query = select(N).where(_due(now)).order_by(N.next_attempt_at, N.seq).limit(limit)
    if db.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claims = []
    with db.transaction() as tx:
        for row in tx.session.scalars(query):
            row.status = SENDING
            row.attempts += 1
            row.claimed_until = now + LEASE
            item = Outgoing(
                id=row.id,
                channel=row.channel,
                kind=row.kind,
                audience=row.audience,
                subject=row.subject,
                message=row.message(),
            )
            claims.append(Claim(item, row.attempts))
    return claims


def finish(
    db: Database,
    done: Claim,
    now: datetime,
    *,
    error: str | None,
    max_attempts: int,
    backoff: timedelta,
    on_dead: Callable[[Tx, N], None] | None = None,
) -> str | None:
    """Record one attempt's outcome; the new status, or None if the claim was lost. A row
    that goes dead is handed to ``on_dead`` in the same transaction (the control centre is
    told: ``NotifyService.dead_letter``)."""
    with db.transaction() as tx:
        row = tx.session.scalars(
            select(N).where(N.id == done.item.id).with_for_update()
        ).one_or_none()
        if row is None or row.status != SENDING or row.attempts != done.attempts:
            log.warning("notification %s: claim lost before its result was recorded", done.item.id)
            return None
        row.claimed_until = None
        if error is None:
            row.status, row.sent_at, row.last_error = SENT, now, None
        else:
            row.last_error = error[:2000]
            if row.attempts >= max_attempts:
                row.status = DEAD
                log.warning(
                    "notification %s (%s) is dead after %d attempts: %s",
                    row.id,
                    row.channel,
                    row.attempts,
                    error,
                )
                if on_dead is not None:
                    on_dead(tx, row)
            else:
                row.status, row.next_attempt_at = FAILED, now + backoff
        return row.status
