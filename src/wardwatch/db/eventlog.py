"""The append-only event log, shared by every domain.

Each state change writes one row here in the same transaction as the change itself. KPIs,
point-in-time snapshots and the planning simulation's calibration all read this log, so
nothing may change state without writing it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.core.events import DomainEvent
from wardwatch.db.base import Base, UTCDateTime


class EventRecord(Base):
    __tablename__ = "event_log"
    __table_args__ = (
        Index("ix_event_log_bed_seq", "bed_id", "seq"),
        Index("ix_event_log_at", "at"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(160))
    site_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ward_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    bed_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    stay_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


def domain_event(rec: EventRecord, *, site_code: str | None, ward_code: str | None) -> DomainEvent:
    """The event as live subscribers see it: the row, with its state columns in ``data``."""
    data = dict(rec.data or {})
    for key in ("from_state", "to_state", "reason", "stay_id"):
        value = getattr(rec, key)
        if value is not None:
            data.setdefault(key, value)
    return DomainEvent(
        seq=rec.seq,
        type=rec.type,
        at=rec.at,
        site_code=site_code,
        ward_code=ward_code,
        bed_id=rec.bed_id,
        data=data,
    )
