"""Shapes of the front door's API: the ambulance feed, ED attendances, and what is read back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from wardwatch.capacity.schemas import AgeGroup, PatientIn
from wardwatch.core.schemas import StrictRequest
from wardwatch.flow.schemas import RequestPriority

HandoverStep = Literal["pre_alert", "arrival", "handover", "clear", "cancel"]
HandoverStatus = Literal["expected", "waiting", "handed_over", "clear", "cancelled"]
Disposition = Literal["admitted", "discharged", "transferred", "left", "died"]
Ref = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$")


def aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone (e.g. 2026-01-05T09:30:00Z)")
    return value


class HandoverMessage(StrictRequest):
    """One message of the ambulance feed. ``service`` + ``incident`` name the job."""

    type: HandoverStep
    service: str = Field(min_length=1, max_length=32, examples=["SECAMB"])
    incident: str = Ref
    at: datetime = Field(description="when it happened, with a time zone")
    site: str | None = Field(
        default=None, max_length=32, description="destination site code (pre-alert, arrival)"
    )
    vehicle: str | None = Field(default=None, max_length=32, description="call sign")
    category: Literal["C1", "C2", "C3", "C4", "C5"] | None = None
    expected_at: datetime | None = Field(default=None, description="pre-alert: expected arrival")
    patient: PatientIn | None = None
    reason: str | None = Field(default=None, max_length=300, description="cancel: why")

    @field_validator("at", "expected_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return aware(value, str(info.field_name))

    @model_validator(mode="after")
    def _needs(self) -> HandoverMessage:
        if self.type in ("pre_alert", "arrival") and not self.site:
            raise ValueError(f"a {self.type} needs the site the crew is going to")
        if self.type == "cancel" and not self.reason:
            raise ValueError("a cancel needs a reason")
        return self


class HandoverFeed(StrictRequest):
    messages: list[HandoverMessage] = Field(min_length=1, max_length=1000)


class FeedResult(BaseModel):
    index: int
    ok: bool
    handover_id: str | None = None
    status: str | None = None
    repeat: bool = False
    error: str | None = None


class HandoverRead(BaseModel):
    id: str
    site: str
    site_name: str
    service: str
    incident: str
    vehicle: str | None
    category: str | None
    status: HandoverStatus
    pre_alert_at: datetime | None
    expected_at: datetime | None
    arrived_at: datetime | None
    handover_at: datetime | None
    clear_at: datetime | None
    cancel_reason: str | None
    #: Arrival → handover (or now, while waiting), minutes.
    minutes: float | None
    #: Time beyond 15 minutes, minutes.
    minutes_lost: float
    #: The standards passed: 15, 30, 45 (release), 60.
    breaches: list[int]
    release_due_at: datetime | None
    alerted_minutes: int


class AttendanceIn(StrictRequest):
    site: str = Field(min_length=1, max_length=32)
    reference: str = Ref
    arrived_at: datetime
    patient: PatientIn | None = None
    handover_id: str | None = Field(default=None, description="the ambulance that brought them")

    @field_validator("arrived_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime | None:
        return aware(value, "arrived_at")


class DecisionIn(StrictRequest):
    at: datetime
    specialty: str = Field(min_length=1, max_length=80, examples=["general medicine"])
    priority: RequestPriority = "urgent"
    age_group: AgeGroup = "adult"
    isolation: bool = False

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime | None:
        return aware(value, "at")


class DepartureIn(StrictRequest):
    at: datetime
    disposition: Disposition

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime | None:
        return aware(value, "at")


class AttendanceRead(BaseModel):
    id: str
    site: str
    reference: str
    patient_id: str | None
    handover_id: str | None
    arrived_at: datetime
    dta_at: datetime | None
    departed_at: datetime | None
    disposition: str | None
    bed_request_id: str | None
    bed_request_status: str | None
    #: Arrival → departure (or now), hours.
    hours_in_department: float
    #: Decision to admit → departure (or now), hours.
    hours_since_dta: float | None
