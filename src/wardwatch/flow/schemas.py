"""Bed request shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from wardwatch.capacity.schemas import AgeGroup, PatientIn
from wardwatch.core.schemas import StrictRequest

Source = Literal["ed", "transfer", "other_site", "elective"]
RequestPriority = Literal["emergency", "urgent", "routine"]
PRIORITY_RANK = {"emergency": 0, "urgent": 1, "routine": 2}


class BedRequestCreate(StrictRequest):
    patient: PatientIn | None = Field(default=None, description="who needs the bed")
    stay_id: str | None = Field(
        default=None, description="for a move between beds: the patient's open stay"
    )
    site: str = Field(min_length=1, max_length=32, description="site code where the bed is wanted")
    specialty: str = Field(min_length=1, max_length=80, examples=["general medicine"])
    source: Source = "ed"
    priority: RequestPriority = "urgent"
    age_group: AgeGroup = "adult"
    isolation: bool = Field(default=False, description="needs a side room")
    from_location: str | None = Field(default=None, max_length=120, examples=["ED majors 4"])
    decided_at: datetime | None = Field(
        default=None,
        description="decision to admit (ED) or when the bed was asked for; now if absent",
    )

    @model_validator(mode="after")
    def _who(self) -> BedRequestCreate:
        if (self.patient is None) == (self.stay_id is None):
            raise ValueError("give either patient (an admission) or stay_id (a move), not both")
        return self

    @field_validator("decided_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("decided_at must carry a time zone (e.g. 2026-01-05T09:30:00Z)")
        return value


class AllocateIn(StrictRequest):
    bed_id: str


class CancelIn(StrictRequest):
    reason: str = Field(min_length=1, max_length=300)


class Candidate(BaseModel):
    bed_id: str
    bed: str
    ward: str
    site: str
    state: str
    ready_in_minutes: int = Field(description="0: available now; else the cleaning still to do")
    specialty_match: bool
    reasons: list[str]


class BedRequestRead(BaseModel):
    id: str
    patient_id: str
    nhs_number: str | None
    local_id: str | None
    stay_id: str | None
    source: str
    site: str
    specialty: str
    sex: str | None
    age_group: str
    isolation: bool
    priority: str
    from_location: str | None
    decided_at: datetime
    created_at: datetime
    created_by: str
    status: str
    bed_id: str | None
    bed: str | None
    ward: str | None
    task_id: str | None
    allocated_at: datetime | None
    arrived_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    waiting_minutes: float = Field(description="from decided_at to arrival (or now)")
    version: int
