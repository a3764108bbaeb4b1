"""Bed requests: patients who need a bed, from the decision to admit to arrival on the ward."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.db.base import Base, UTCDateTime


class BedRequest(Base):
    __tablename__ = "bed_requests"
    __table_args__ = (Index("ix_bed_requests_site_status", "site_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    #: The patient's open stay, for a transfer between beds; None for an admission.
    stay_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # ed|transfer|other_site|elective
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    specialty: Mapped[str] = mapped_column(String(80))
    sex: Mapped[str | None] = mapped_column(String(8), nullable=True)
    age_group: Mapped[str] = mapped_column(String(12))  # adult|paediatric
    isolation: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[str] = mapped_column(String(12))  # emergency|urgent|routine
    from_location: Mapped[str | None] = mapped_column(String(120), nullable=True)
    #: When the bed was asked for (the decision to admit, for ED).
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(12), index=True)  # waiting|allocated|...
    bed_id: Mapped[str | None] = mapped_column(ForeignKey("beds.id"), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    allocated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    allocated_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
