"""Tables of the front door: ambulance handovers, ED attendances and OPEL history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.db.base import Base, UTCDateTime


class Handover(Base):
    """One ambulance conveyance: pre-alert → arrival → handover complete → vehicle clear.

    ``service`` + ``incident`` is the ambulance service's own reference for the job, so a
    message the service sends twice finds the same row.
    """

    __tablename__ = "handovers"
    __table_args__ = (
        UniqueConstraint("service", "incident"),
        Index("ix_handovers_site_status", "site_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    service: Mapped[str] = mapped_column(String(32))  # the ambulance service's code
    incident: Mapped[str] = mapped_column(String(64))  # its incident / job number
    vehicle: Mapped[str | None] = mapped_column(String(32), nullable=True)  # call sign
    category: Mapped[str | None] = mapped_column(String(8), nullable=True)  # C1..C5
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    # expected|waiting|handed_over|clear|cancelled
    status: Mapped[str] = mapped_column(String(12), index=True)
    pre_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    handover_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clear_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: The highest delay (minutes: 30, 45) the control centre has been alerted to.
    alerted_minutes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class Attendance(Base):
    """One ED attendance: arrival → (decision to admit) → departure."""

    __tablename__ = "ed_attendances"
    __table_args__ = (
        UniqueConstraint("site_id", "reference"),
        Index("ix_ed_attendances_site_open", "site_id", "departed_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    #: The ED system's attendance number (unique within the site).
    reference: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    handover_id: Mapped[str | None] = mapped_column(ForeignKey("handovers.id"), nullable=True)
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    dta_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    bed_request_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    departed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # admitted|discharged|transferred|left|died
    disposition: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class OpelLevel(Base):
    """A period at one OPEL level, for a site or for the whole system (``site_id`` None).

    A row is written when the level changes (and the first time it is computed); it keeps
    the score and every parameter's value, band and weight that produced it.
    """

    __tablename__ = "opel_levels"
    __table_args__ = (Index("ix_opel_levels_scope_at", "scope", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: A site code, or "system".
    scope: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), nullable=True)
    level: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
