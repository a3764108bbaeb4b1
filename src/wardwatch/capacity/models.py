"""Tables of the capacity domain (SQLAlchemy 2.0 typed mappings)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wardwatch.db.base import Base, UTCDateTime


class HealthSystem(Base):
    __tablename__ = "health_system"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    occupancy_target: Mapped[float] = mapped_column(Float, default=0.92)
    # Bumped whenever sites, wards or beds change, so readers can cache the structure.
    structure_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The OPEL parameters, weights and cut-offs every acute site uses unless it has its own.
    opel: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # acute|community|care_home|virtual_ward
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The facility code the PAS sends in PV1-3.4 (HL7 feeds); defaults to the site code.
    pas_facility: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # This site's own OPEL parameters (overrides the system's), from the system file.
    opel: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    wards: Mapped[list[Ward]] = relationship(back_populates="site", order_by="Ward.code")


class Ward(Base):
    __tablename__ = "wards"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    code: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    specialty: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(12))  # core|escalation
    age_group: Mapped[str] = mapped_column(String(12))  # adult|paediatric
    general_acute: Mapped[bool] = mapped_column(Boolean)
    sex_policy: Mapped[str] = mapped_column(String(8))  # mixed|male|female
    # The point of care the PAS sends in PV1-3.1, and PAS bed labels that are not numbers.
    pas_point_of_care: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    pas_beds: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)

    site: Mapped[Site] = relationship(back_populates="wards")


class Bed(Base):
    __tablename__ = "beds"
    __table_args__ = (Index("ix_beds_ward_state", "ward_id", "state"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    ward_id: Mapped[str] = mapped_column(ForeignKey("wards.id"))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    virtual: Mapped[bool] = mapped_column(Boolean, default=False)
    side_room: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_since: Mapped[datetime] = mapped_column(UTCDateTime)
    state_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The stay occupying or reserved into this bed, if any.
    stay_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Compare-and-set version: every state write checks and bumps it.
    version: Mapped[int] = mapped_column(Integer, default=1)

    ward: Mapped[Ward] = relationship()

    __mapper_args__ = {"version_id_col": version}


class Patient(Base):
    """Deliberately minimal: identifiers and the sex needed for single-sex accommodation."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nhs_number: Mapped[str | None] = mapped_column(String(10), unique=True, nullable=True)
    local_id: Mapped[str | None] = mapped_column(String(40), unique=True, nullable=True)
    sex: Mapped[str | None] = mapped_column(String(8), nullable=True)  # male|female|other|unknown


class Stay(Base):
    """A hospital spell in the system, from admission to discharge, across transfers."""

    __tablename__ = "stays"
    __table_args__ = (
        # One open stay per patient and per bed, enforced by the database itself.
        Index(
            "uq_stays_open_patient",
            "patient_id",
            unique=True,
            sqlite_where=text("discharged_at IS NULL"),
            postgresql_where=text("discharged_at IS NULL"),
        ),
        Index(
            "uq_stays_open_bed",
            "bed_id",
            unique=True,
            sqlite_where=text("discharged_at IS NULL"),
            postgresql_where=text("discharged_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    bed_id: Mapped[str] = mapped_column(ForeignKey("beds.id"))
    admitted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str | None] = mapped_column(String(40), nullable=True)
    expected_discharge_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    discharge_ready_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    discharge_destination: Mapped[str | None] = mapped_column(String(80), nullable=True)
    discharge_pathway: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set when the admission itself was cancelled (HL7 A11): the stay never happened.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Leave of absence (HL7 A21/A22): the bed is held while the patient is away.
    on_leave_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The PAS visit number (PV1-19), when the stay came from a feed.
    visit_number: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)

    patient: Mapped[Patient] = relationship()
    bed: Mapped[Bed] = relationship(foreign_keys=[bed_id])


class PendingMove(Base):
    """An expected arrival, transfer or departure (HL7 A05/A14, A15, A16), until it happens."""

    __tablename__ = "pending_moves"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))  # admit | transfer | discharge
    status: Mapped[str] = mapped_column(String(12), index=True)  # pending|done|cancelled
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    stay_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    from_bed_id: Mapped[str | None] = mapped_column(ForeignKey("beds.id"), nullable=True)
    to_bed_id: Mapped[str | None] = mapped_column(ForeignKey("beds.id"), nullable=True)
    to_ward_id: Mapped[str | None] = mapped_column(ForeignKey("wards.id"), nullable=True)
    reserved: Mapped[bool] = mapped_column(Boolean, default=False)
    expected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    source: Mapped[str | None] = mapped_column(String(80), nullable=True)
