"""Request and response shapes for the virtual-ward API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from wardwatch.capacity.schemas import PatientIn
from wardwatch.core.schemas import StrictRequest
from wardwatch.virtualward.rules import PLAN_PARAMETERS

Mode = Literal["spot", "continuous"]
Action = Literal["called_patient", "home_visit", "escalated_hospital", "escalated_999", "no_action"]
EndReason = Literal["recovered", "stepped_up", "died", "declined", "other"]


class PlanIn(StrictRequest):
    """What is measured and how often; the plan drives the missed-reading alert."""

    parameters: list[str] = Field(
        default_factory=lambda: [
            "respiration_rate",
            "spo2",
            "systolic_bp",
            "pulse",
            "consciousness",
            "temperature",
        ],
        description=f"any of {', '.join(PLAN_PARAMETERS)}",
    )
    mode: Mode = "spot"
    times_per_day: int | None = Field(default=None, ge=1, le=48, description="spot checks")
    interval_minutes: float | None = Field(default=None, gt=0, le=240, description="continuous")
    grace_minutes: float | None = Field(default=None, ge=0, le=720)
    oxygen: Literal["air", "oxygen"] = Field(
        default="air", description="prescribed home oxygen (a flow reading overrides it)"
    )
    set_window_minutes: float | None = Field(
        default=None,
        gt=0,
        le=720,
        description="readings within this many minutes of the newest form one NEWS2 set "
        "(default: the service's setting, 15). A clinical decision: a longer window lets a "
        "twice-daily blood pressure complete a wearable's sets, with older values",
    )

    @field_validator("parameters")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in PLAN_PARAMETERS]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; known: {list(PLAN_PARAMETERS)}")
        if not value:
            raise ValueError("a plan monitors at least one parameter")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _timing(self) -> PlanIn:
        if self.mode == "spot" and self.interval_minutes is not None:
            raise ValueError("spot checks are set with times_per_day, not interval_minutes")
        if self.mode == "continuous" and self.times_per_day is not None:
            raise ValueError("continuous monitoring is set with interval_minutes")
        return self


class Limits(StrictRequest):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _order(self) -> Limits:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("min must be below max")
        return self


class EnrolRequest(StrictRequest):
    patient: PatientIn
    ward: str = Field(min_length=1, max_length=64, description="virtual ward code")
    bed_id: str | None = Field(default=None, description="a particular place (else the first free)")
    team: str | None = Field(default=None, description="responsible team code (else the site's)")
    plan: PlanIn = Field(default_factory=PlanIn)
    thresholds: dict[str, Limits] | None = None
    devices: list[str] = Field(default_factory=list, description="device serials to link now")


class PlanUpdate(StrictRequest):
    plan: PlanIn


class ThresholdsUpdate(StrictRequest):
    thresholds: dict[str, Limits]

    @field_validator("thresholds")
    @classmethod
    def _known(cls, value: dict[str, Limits]) -> dict[str, Limits]:
        unknown = [p for p in value if p not in PLAN_PARAMETERS or p == "consciousness"]
        if unknown:
            raise ValueError(f"no numeric threshold can be set for {unknown}")
        return value


class ScaleUpdate(StrictRequest):
    scale: Literal[1, 2]
    reason: str = Field(
        min_length=3,
        max_length=300,
        description="why (scale 2: documented hypercapnic respiratory failure, target 88-92%)",
    )


class EndRequest(StrictRequest):
    reason: EndReason = "recovered"
    destination: str = Field(default="usual residence", min_length=1, max_length=80)


class StepUpRequest(StrictRequest):
    site: str = Field(min_length=1, max_length=32, description="hospital site code")
    specialty: str = Field(min_length=1, max_length=80)
    priority: Literal["emergency", "urgent", "routine"] = "urgent"
    reason: str = Field(min_length=3, max_length=300)


class DeviceIn(StrictRequest):
    serial: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$")
    kind: str = Field(default="wearable", min_length=1, max_length=40)
    model: str | None = Field(default=None, max_length=120)


class LinkRequest(StrictRequest):
    serial: str = Field(min_length=1, max_length=80)
    at: datetime | None = Field(default=None, description="from when (now if absent)")


class AlertActionIn(StrictRequest):
    action: Action
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _why(self) -> AlertActionIn:
        if self.action == "no_action" and not (self.reason and self.reason.strip()):
            raise ValueError("'no action' needs a reason")
        return self


class NoteIn(StrictRequest):
    text: str = Field(min_length=1, max_length=2000)


class ResolveIn(StrictRequest):
    note: str | None = Field(default=None, max_length=2000)


# --- responses -----------------------------------------------------------------------------


class ScoreRead(BaseModel):
    id: int
    at: datetime
    oldest_at: datetime
    age_minutes: float
    scale: int
    total: int | None
    partial_total: int
    partial: bool
    risk: str
    parameters: dict[str, int]
    values: dict[str, Any]
    missing: list[str]
    reasons: dict[str, str]


class RejectedRead(BaseModel):
    id: int
    received_at: datetime
    source: str
    sender: str | None
    reason: str
    payload: str


class DeviceRead(BaseModel):
    id: str
    serial: str
    kind: str
    model: str | None
    last_seen_at: datetime | None
    battery_pct: int | None
    linked_to: str | None  # enrolment id
    linked_at: datetime | None


class AlertNoteRead(BaseModel):
    at: datetime
    by: str
    what: str
    text: str | None


class AlertRead(BaseModel):
    id: str
    enrolment_id: str
    patient: str  # NHS number or local id, for the clinician
    team: str
    kind: str  # news2_high, news2_medium, single_3, threshold, trend, missed_reading, ...
    group: str  # at most one open alert per patient and group (news2, missed, stale, ...)
    severity: str
    status: str
    summary: str
    opened_at: datetime
    due_at: datetime
    minutes_left: float  # negative when late
    level: int
    repeats: int
    action: str | None
    action_reason: str | None
    acknowledged_by: str | None
    version: int
    notes: list[AlertNoteRead] = Field(default_factory=list)


class EnrolmentRead(BaseModel):
    id: str
    patient_id: str
    patient: str
    nhs_number: str | None
    local_id: str | None
    stay_id: str
    site: str
    ward: str
    bed_id: str
    bed: str
    team: str
    enrolled_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    plan: dict[str, Any]
    scale: int
    scale_set_by: str | None
    scale_set_at: datetime | None
    thresholds: dict[str, Any] | None
    last_reading_at: datetime | None
    latest: ScoreRead | None
    open_alerts: list[AlertRead] = Field(default_factory=list)
    devices: list[DeviceRead] = Field(default_factory=list)
