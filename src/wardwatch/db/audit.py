"""Audit log of who read or changed patient data (kept apart from the event log)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.db.base import Base, UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(160), index=True)
    action: Mapped[str] = mapped_column(String(16))  # read | create | update
    resource: Mapped[str] = mapped_column(String(40))
    resource_ids: Mapped[str] = mapped_column(Text)  # comma-separated opaque ids
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
