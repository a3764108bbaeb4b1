"""Notifications: rules on events write an outbox in the event's own transaction.

``on_record`` is a reactor (``Database.react``): for each event recorded it applies the
rules and, just before the commit, writes one ``notifications`` row per recipient. If the
event commits, its notifications exist; if it rolls back, they never did. After the commit,
feed notifications go out to live subscribers and the delivery workers are woken for the
rest (webhooks, email), which :class:`~wardwatch.notify.dispatcher.Dispatcher` sends.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Site, Ward
from wardwatch.config import Settings
from wardwatch.core.actor import Actor
from wardwatch.core.bus import EventBus
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.events import DomainEvent
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Database, Tx
from wardwatch.notify import rules
from wardwatch.notify.channels import Outgoing
from wardwatch.notify.config import NotifyConfig, default_rules, load_rules
from wardwatch.notify.models import DEAD, PENDING, SENDING, SENT, STATUSES, Notification
from wardwatch.notify.outbox import LEASE, Claim
from wardwatch.notify.schemas import NotificationRead

log = logging.getLogger(__name__)
KEY = "notify"
#: Who is told of a delivery that will not be tried again, and under what rule name.
DEAD_LETTER_AUDIENCE = "role:control-centre"
DEAD_LETTER_RULE = "dead letter (built in)"
FEED_EVENT = "notification"


class NotifyService:
    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        path = settings.notify_file
        self.config: NotifyConfig = load_rules(path) if path else default_rules()
        #: Feed notifications, published after commit (``DomainEvent.data`` = the message).
        self.feed_bus = EventBus()
        #: Targets skipped because the event lacked a field: "rule -> target" → count.
        self.skipped: Counter[str] = Counter()
        self._wakers: list[Callable[[], None]] = []
        self._handoffs: list[Callable[[list[Claim]], None]] = []
        self._lock = threading.Lock()

    def use(self, config: NotifyConfig) -> None:
        """Apply other rules from now on (tests; a reload)."""
        self.config = config

    # --- delivery workers ------------------------------------------------------------------

    def add_waker(self, wake: Callable[[], None]) -> None:
        """``wake()`` is called (from any thread) after a commit that queued deliveries."""
        with self._lock:
            self._wakers.append(wake)

    def remove_waker(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._wakers:
                self._wakers.remove(wake)

    def add_handoff(self, take: Callable[[list[Claim]], None]) -> None:
        """While a dispatcher runs in this process, the deliveries a transaction queues are
        written already claimed by it and handed over after the commit: they go out at
        once, without a claiming transaction first. (If it stops in between, its claims
        come due again when their lease ends.)"""
        with self._lock:
            self._handoffs.append(take)

    def remove_handoff(self, take: Callable[[list[Claim]], None]) -> None:
        with self._lock:
            if take in self._handoffs:
                self._handoffs.remove(take)

    def wake(self) -> None:
        with self._lock:
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    # --- inside the event's transaction ----------------------------------------------------

    def on_record(self, tx: Tx, rec: EventRecord) -> None:
        """Reactor: plan the notifications ``rec`` asks for; written just before commit."""
        if rec.type.startswith("notification."):
            return
        site, ward = self._codes(tx, rec)
        states = {"from_state": rec.from_state, "to_state": rec.to_state, "reason": rec.reason}
        fields = rules.event_fields(rec.type, rec.data, site=site, ward=ward, states=states)
        planned, skipped = rules.plan(self.config, fields)
        for s in skipped:
            self.skipped[f"{s.rule} -> {s.target}"] += 1
            log.info("rule %r: skipped %s for %s (no %s)", s.rule, s.target, rec.type, s.missing)
        if not planned:
            return
        tx.scratch.setdefault(KEY, []).append((rec, fields, planned))
        tx.before_commit.setdefault(KEY, lambda session: self._write(tx, session))

    def _codes(self, tx: Tx, rec: EventRecord) -> tuple[str | None, str | None]:
        site, ward = tx.codes_for(rec)
        if site is None and rec.site_id:
            found = tx.session.get(Site, rec.site_id)
            site = found.code if found else None
        if ward is None and rec.ward_id:
            found_ward = tx.session.get(Ward, rec.ward_id)
            ward = found_ward.code if found_ward else None
        return site, ward

    def _write(self, tx: Tx, session: Session) -> None:
        session.flush()  # the events get their sequence numbers
        now = self.clock.now()
        direct = bool(self._handoffs)  # claimed here for this process's dispatcher
        rows = []
        for rec, fields, planned in tx.scratch.pop(KEY, []):
            body = rules.body(fields, rec.data)
            task = fields.get("task")
            for p in planned:
                feed = p.kind == rules.FEED
                rows.append(
                    Notification(
                        id=new_id("ntf"),
                        created_at=now,
                        rule=p.rule,
                        channel=p.channel,
                        kind=p.kind,
                        audience=p.audience,
                        event_seq=rec.seq,
                        event_type=rec.type,
                        task_id=task[:40] if task else None,
                        subject=p.subject,
                        body=body,
                        status=SENT if feed else SENDING if direct else PENDING,
                        attempts=1 if feed or direct else 0,
                        next_attempt_at=None if feed else now,
                        claimed_until=now + LEASE if direct and not feed else None,
                        sent_at=now if feed else None,
                    )
                )
        session.add_all(rows)
        tx.after_commit[KEY] = lambda: self._committed(rows)

    def _committed(self, rows: Sequence[Notification]) -> None:
        feed = [r for r in rows if r.kind == rules.FEED]
        if feed:
            self.feed_bus.publish(
                DomainEvent(seq=r.seq, type=FEED_EVENT, at=r.created_at, data=r.message())
                for r in feed
            )
        claimed = [r for r in rows if r.status == SENDING]
        if claimed:
            with self._lock:
                take = self._handoffs[0] if self._handoffs else None
            if take is not None:
                take([Claim(_outgoing(r), r.attempts) for r in claimed])
        if len(feed) + len(claimed) < len(rows):
            self.wake()

    def dead_letter(self, tx: Tx, dead: Notification) -> None:
        """A delivery that will not be tried again (webhook, email) is told to the control
        centre's feed, in the same transaction, whatever the rules say (HAZ-N01 a). A feed
        is written, never sent, so it cannot go dead itself: this cannot loop."""
        now = self.clock.now()
        row = Notification(
            id=new_id("ntf"),
            created_at=now,
            rule=DEAD_LETTER_RULE,
            channel=rules.FEED,
            kind=rules.FEED,
            audience=DEAD_LETTER_AUDIENCE,
            event_seq=dead.event_seq,
            event_type=dead.event_type,
            task_id=dead.task_id,
            subject=f"Not delivered after {dead.attempts} attempts ({dead.kind} "
            f"{dead.channel}): {dead.subject}"[:300],
            body={
                "notification": dead.id,
                "channel": dead.channel,
                "kind": dead.kind,
                "attempts": dead.attempts,
            },
            status=SENT,
            attempts=1,
            sent_at=now,
        )
        tx.session.add(row)
        tx.after_commit[f"{KEY}:dead:{dead.id}"] = lambda: self._committed([row])

    # --- reads -----------------------------------------------------------------------------

    def feed(self, audiences: Sequence[str], *, after: int = 0, limit: int = 500) -> list[Any]:
        """Feed notifications for ``audiences`` after sequence ``after``, oldest first."""
        query = (
            select(Notification)
            .where(
                Notification.kind == rules.FEED,
                Notification.audience.in_(list(audiences)),
                Notification.seq > after,
            )
            .order_by(Notification.seq)
            .limit(limit)
        )
        with self.db.read() as s:
            return [r.message() for r in s.scalars(query)]

    def list(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        task_id: str | None = None,
        limit: int = 100,
    ) -> list[NotificationRead]:
        """Notifications, newest first, filtered by status, channel and task."""
        if status is not None and status not in STATUSES:
            raise ValidationFailed(f"no status {status!r}: use one of {', '.join(STATUSES)}")
        query = select(Notification).order_by(Notification.seq.desc()).limit(limit)
        if status:
            query = query.where(Notification.status == status)
        if channel:
            query = query.where(Notification.channel == channel)
        if task_id:
            query = query.where(Notification.task_id == task_id)
        with self.db.read() as s:
            return [NotificationRead.model_validate(r) for r in s.scalars(query)]

    def get(self, notification_id: str) -> NotificationRead:
        with self.db.read() as s:
            row = s.scalar(select(Notification).where(Notification.id == notification_id))
            if row is None:
                raise NotFound(f"no notification {notification_id!r}")
            return NotificationRead.model_validate(row)

    # --- dead letters ----------------------------------------------------------------------

    def retry(self, notification_id: str, actor: Actor) -> NotificationRead:
        """Send a dead notification again, with a fresh set of attempts."""
        with self.db.transaction() as tx:
            row = tx.session.scalars(
                select(Notification).where(Notification.id == notification_id).with_for_update()
            ).one_or_none()
            if row is None:
                raise NotFound(f"no notification {notification_id!r}")
            if row.status != DEAD:
                raise Conflict(
                    f"notification {notification_id} is {row.status}, not dead: only dead "
                    "notifications can be retried"
                )
            now = self.clock.now()
            row.status, row.attempts, row.next_attempt_at = PENDING, 0, now
            row.claimed_until = None
            tx.record(
                "notification.retried",
                at=now,
                actor=actor,
                data={"notification": row.id, "channel": row.channel},
            )
            tx.after_commit[KEY] = self.wake
            return NotificationRead.model_validate(row)


def _outgoing(row: Notification) -> Outgoing:
    return Outgoing(
        id=row.id,
        channel=row.channel,
        kind=row.kind,
        audience=row.audience,
        subject=row.subject,
        message=row.message(),
    )
