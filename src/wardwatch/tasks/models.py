"""Team tasks (cleaning, porter transfers, anything else) and their escalations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wardwatch.db.base import Base, UTCDateTime


class Team(Base):
    """People who answer tasks: a site's housekeeping or porters, or any other team."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # housekeeping|porters|other
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), nullable=True, index=True)
    supervisor_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    #: Minutes allowed per task type: {"cleaning/standard": {"accept": 15, "finish": 60}}.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: Minutes a supervisor has to acknowledge before the control centre is told.
    supervisor_minutes: Mapped[int] = mapped_column(Integer, default=15)
    #: Made by WardWatch because a site needed a team nobody had configured; a configured
    #: team of the same kind takes over from it.
    auto: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_team_status", "team_id", "status"),
        Index("ix_tasks_bed_status", "bed_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # cleaning|transfer|other
    type: Mapped[str] = mapped_column(String(24))  # cleaning: standard|infection
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), nullable=True)
    ward_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    bed_id: Mapped[str | None] = mapped_column(ForeignKey("beds.id"), nullable=True)
    # Codes copied at creation (codes never change), so queues and events need no joins.
    team_code: Mapped[str] = mapped_column(String(64), index=True)
    site_code: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    ward_code: Mapped[str | None] = mapped_column(String(48), nullable=True)
    bed_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stay_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    priority: Mapped[str] = mapped_column(String(12))  # clean_next|urgent|routine
    #: The priority without 'clean next': as created or as set by hand.
    base_priority: Mapped[str] = mapped_column(String(12))
    description: Mapped[str] = mapped_column(String(300))
    cause: Mapped[str] = mapped_column(String(40))  # the event that asked for it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_by: Mapped[str] = mapped_column(String(160))
    expected_minutes: Mapped[int] = mapped_column(Integer)
    accept_by: Mapped[datetime] = mapped_column(UTCDateTime)
    finish_by: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: When the escalation check must next look at this task (None: nothing more to check).
    escalate_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class Escalation(Base):
    """A task that missed a time limit, raised to a supervisor (level 1) or the control
    centre (level 2); open until acknowledged or until the task moves on."""

    __tablename__ = "escalations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    level: Mapped[int] = mapped_column(Integer)
    breach: Mapped[str] = mapped_column(String(8))  # accept|finish
    target: Mapped[str] = mapped_column(String(20))  # supervisor|control-centre
    reason: Mapped[str] = mapped_column(String(300))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
