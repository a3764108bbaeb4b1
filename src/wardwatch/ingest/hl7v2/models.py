"""Tables of the HL7 v2 feed: every message received, and per-patient event clocks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.db.base import Base, UTCDateTime


class Hl7Message(Base):
    """One message as received, what became of it, and the acknowledgement sent."""

    __tablename__ = "hl7_messages"
    __table_args__ = (Index("ix_hl7_messages_status_received", "status", "received_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # MSH-3|MSH-4|MSH-10: a resent message has the same key.
    key: Mapped[str] = mapped_column(String(240), unique=True)
    control_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    message_type: Mapped[str | None] = mapped_column(String(20), nullable=True)
    version: Mapped[str | None] = mapped_column(String(12), nullable=True)
    event_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # accepted | ignored | quarantined | discarded
    status: Mapped[str] = mapped_column(String(12))
    ack_code: Mapped[str] = mapped_column(String(2))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_location: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempts: Mapped[int] = mapped_column(default=1)
    source: Mapped[str | None] = mapped_column(String(120), nullable=True)
    # The message itself; emptied after the retention period (the row stays for audit).
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)


class Hl7PatientClock(Base):
    """The latest event time applied for a patient, so late messages cannot undo later ones."""

    __tablename__ = "hl7_patient_clocks"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_message_id: Mapped[str] = mapped_column(String(40))


class Hl7Feed(Base):
    """A sending system (MSH-3|MSH-4) and when it was last heard (to the minute), so that a
    feed gone quiet is reported (:mod:`wardwatch.ingest.hl7v2.feeds`)."""

    __tablename__ = "hl7_feeds"

    sender: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_heard_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Reported silent: since when (its last message then); cleared when it is heard again.
    silent_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
