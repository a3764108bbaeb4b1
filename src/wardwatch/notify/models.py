"""The notifications table: an outbox written in the same transaction as its event.

Every notification a rule produces is a row here, with its delivery status. Feed
notifications are ``sent`` when their transaction commits; webhook and email rows start
``pending`` and the dispatcher claims, delivers, retries (with backoff) and finally marks
them ``sent`` or ``dead`` (the dead-letter list an administrator can retry).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.db.base import Base, UTCDateTime

#: Delivery states. ``failed`` means "failed at least once, a retry is scheduled".
PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"
STATUSES = (PENDING, SENDING, SENT, FAILED, DEAD)
#: States the dispatcher may pick up once ``next_attempt_at`` has passed.
DUE = (PENDING, FAILED)


class Notification(Base):
    """One message for one recipient through one channel, and what became of it."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
        Index("ix_notifications_audience_seq", "audience", "seq"),
    )

    # The order notifications were written in; also the SSE event id of feed streams.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rule: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(120), index=True)
    # feed | webhook | email
    kind: Mapped[str] = mapped_column(String(12))
    # Feed: "team:RMH-housekeeping" / "role:control-centre"; email: the address;
    # webhook: the channel name (the URL lives in configuration, never here).
    audience: Mapped[str] = mapped_column(String(254))
    event_seq: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True
    )
    event_type: Mapped[str] = mapped_column(String(40))
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A worker that claims a row owns it until then; a crashed worker's rows come back.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def message(self) -> dict[str, Any]:
        """The notification as a webhook receiver, a feed client and an email see it."""
        return {
            "id": self.id,
            "seq": self.seq,
            "rule": self.rule,
            "channel": self.channel,
            "audience": self.audience,
            "event": self.event_type,
            "event_seq": self.event_seq,
            "task": self.task_id,
            "subject": self.subject,
            "created_at": self.created_at.isoformat(),
            "data": self.body,
        }
