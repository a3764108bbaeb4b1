"""Virtual-ward tables: enrolments, devices, readings, NEWS2 scores and alerts.

Readings and scores are append-only and written in bulk (Core inserts, not the ORM), because
a fleet of continuous wearables sends thousands a second. ``vw_latest`` keeps each
enrolment's newest value of each parameter so an observation set is assembled from a handful
of rows, not a scan of the readings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.db.base import Base, UTCDateTime

BIGINT = BigInteger().with_variant(Integer, "sqlite")


class Enrolment(Base):
    """A patient on a virtual ward: their stay in a virtual-ward place and how they are watched."""

    __tablename__ = "vw_enrolments"
    __table_args__ = (
        Index(
            "uq_vw_enrolments_open_patient",
            "patient_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    stay_id: Mapped[str] = mapped_column(ForeignKey("stays.id"), unique=True)
    #: The virtual-ward place (the stay moves on to a hospital bed when stepped up).
    bed_id: Mapped[str] = mapped_column(ForeignKey("beds.id"))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), index=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enrolled_by: Mapped[str] = mapped_column(String(160))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: The monitoring plan: {"parameters": [...], "mode": "spot"|"continuous",
    #: "interval_minutes": n, "grace_minutes": n, "oxygen": "air"|"oxygen"}.
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: NEWS2 SpO2 scale; 2 only when a clinician set it (who and when below).
    scale: Mapped[int] = mapped_column(Integer, default=1)
    scale_set_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    scale_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    scale_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: Patient-specific alert thresholds: {"pulse": {"min": 45, "max": 120}, ...}.
    thresholds: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The latest score, kept here so the caseload is one query ordered by risk.
    last_reading_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_score_id: Mapped[int | None] = mapped_column(BIGINT, nullable=True)
    last_score_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_partial_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_risk: Mapped[str | None] = mapped_column(String(12), nullable=True)
    #: The last few complete totals, oldest first (the trend rule reads them).
    recent_totals: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)


class Device(Base):
    __tablename__ = "vw_devices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    serial: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(40))  # wearable|oximeter|bp_cuff|thermometer|app|...
    model: Mapped[str | None] = mapped_column(String(120), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_by: Mapped[str] = mapped_column(String(160))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    battery_pct: Mapped[int | None] = mapped_column(Integer, nullable=True)
    battery_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeviceLink(Base):
    """A device worn by one patient for a period: readings are theirs only inside it."""

    __tablename__ = "vw_device_links"
    __table_args__ = (
        Index(
            "uq_vw_device_links_open_device",
            "device_id",
            unique=True,
            sqlite_where=text("unlinked_at IS NULL"),
            postgresql_where=text("unlinked_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("vw_devices.id"), index=True)
    enrolment_id: Mapped[str] = mapped_column(ForeignKey("vw_enrolments.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    linked_by: Mapped[str] = mapped_column(String(160))
    unlinked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unlinked_by: Mapped[str | None] = mapped_column(String(160), nullable=True)


class Reading(Base):
    """One vital-sign value, as stored after unit conversion. Append-only."""

    __tablename__ = "vw_readings"
    __table_args__ = (Index("ix_vw_readings_enrolment_at", "enrolment_id", "at"),)

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    #: The sender's identifier for the reading (device or patient + its own id, or a digest
    #: of the content when it sent none): a resent reading is stored once.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    enrolment_id: Mapped[str] = mapped_column(String(40))
    parameter: Mapped[str] = mapped_column(String(24))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    text_value: Mapped[str | None] = mapped_column(String(8), nullable=True)  # ACVPU
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(8))  # mqtt|fhir|hl7|api
    #: The serial of the device that sent it (serials, not ids: what the sender said).
    device: Mapped[str | None] = mapped_column("device", String(80), nullable=True)


class Latest(Base):
    """Each enrolment's newest value of each parameter (the observation-set assembler's view)."""

    __tablename__ = "vw_latest"

    enrolment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    parameter: Mapped[str] = mapped_column(String(24), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    text_value: Mapped[str | None] = mapped_column(String(8), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Rejected(Base):
    """A reading (or a whole message) refused, kept for inspection; never scored."""

    __tablename__ = "vw_rejected"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str] = mapped_column(String(8))
    sender: Mapped[str | None] = mapped_column(String(120), nullable=True)  # device or patient
    reason: Mapped[str] = mapped_column(String(500))
    payload: Mapped[str] = mapped_column(Text)


class Score(Base):
    """A NEWS2 score of one assembled observation set. Append-only."""

    __tablename__ = "vw_scores"
    __table_args__ = (Index("ix_vw_scores_enrolment_at", "enrolment_id", "at"),)

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # the newest reading in the set
    oldest_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the oldest reading in the set
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scale: Mapped[int] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    partial_total: Mapped[int] = mapped_column(Integer)
    partial: Mapped[bool] = mapped_column(Boolean)
    risk: Mapped[str] = mapped_column(String(12))
    #: {"parameters": {name: points}, "values": {name: value}, "missing": [...]}
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class Alert(Base):
    __tablename__ = "vw_alerts"
    __table_args__ = (
        # One open alert per patient and rule group: repeats update it, never flood.
        Index(
            "uq_vw_alerts_open_group",
            "enrolment_id",
            "grp",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
        Index("ix_vw_alerts_status_due", "status", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    enrolment_id: Mapped[str] = mapped_column(ForeignKey("vw_enrolments.id"))
    team_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    grp: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(12))  # emergency|urgent|low_medium|info
    status: Mapped[str] = mapped_column(String(12))  # new|acknowledged|actioned|resolved
    summary: Mapped[str] = mapped_column(String(300))
    score_id: Mapped[int | None] = mapped_column(BIGINT, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    last_triggered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    action: Mapped[str | None] = mapped_column(String(24), nullable=True)
    action_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    actioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    actioned_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    #: 0 none, 1 senior clinician, 2 control centre; next_escalation_at when the next is due.
    level: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class AlertNote(Base):
    """Who did what to an alert, and free-text notes: the alert's own history."""

    __tablename__ = "vw_alert_notes"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("vw_alerts.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(160))
    what: Mapped[str] = mapped_column(String(24))  # raised|upgraded|acknowledged|...|note
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
