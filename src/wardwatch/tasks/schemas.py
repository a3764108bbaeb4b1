"""Task, team and escalation shapes for the API, the CLI and the teams file."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from wardwatch.core.schemas import StrictRequest
from wardwatch.tasks.rules import DEFAULT_LIMITS

TeamKind = Literal["housekeeping", "porters", "other", "virtual_ward"]
TaskKind = Literal["cleaning", "transfer", "other"]
Priority = Literal["clean_next", "urgent", "routine"]
CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class LimitSpec(StrictRequest):
    expected: int | None = Field(default=None, ge=1, le=24 * 60)
    accept: int | None = Field(default=None, ge=1, le=24 * 60)
    finish: int | None = Field(default=None, ge=1, le=7 * 24 * 60)


class TeamSpec(StrictRequest):
    code: str = Field(min_length=1, max_length=64, pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    kind: TeamKind
    site: str | None = Field(default=None, description="site code; none for a system team")
    supervisor_email: str | None = Field(
        default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    )
    supervisor_minutes: int = Field(default=15, ge=1, le=24 * 60)
    limits: dict[str, LimitSpec] = Field(
        default_factory=dict,
        description="minutes per task type, e.g. {'cleaning/standard': {'accept': 10}}",
    )

    @field_validator("limits")
    @classmethod
    def _known_types(cls, value: dict[str, LimitSpec]) -> dict[str, LimitSpec]:
        unknown = sorted(set(value) - set(DEFAULT_LIMITS))
        if unknown:
            raise ValueError(
                f"unknown task type(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(DEFAULT_LIMITS))})"
            )
        return value


class TeamsFile(StrictRequest):
    teams: list[TeamSpec] = Field(min_length=1)


class TeamRead(BaseModel):
    id: str
    code: str
    name: str
    kind: str
    site: str | None
    supervisor_email: str | None
    supervisor_minutes: int
    limits: dict[str, dict[str, int]]


class TaskCreate(StrictRequest):
    """A task for a team that is not cleaning or a bed-request transfer (those make their
    own): e.g. 'take the spare pump to ward 12'."""

    team: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=300)
    priority: Priority = "routine"
    bed_id: str | None = None


class TaskActionIn(StrictRequest):
    version: int | None = Field(
        default=None, description="the version you saw; refused if the task changed since"
    )
    reason: str | None = Field(default=None, max_length=300, description="needed to cancel")


class TaskUpdate(StrictRequest):
    priority: Priority | None = None
    type: Literal["standard", "infection"] | None = Field(
        default=None, description="cleaning type (an infection clean takes longer)"
    )


class TaskRead(BaseModel):
    id: str
    kind: str
    type: str
    team: str
    site: str | None
    ward: str | None
    bed_id: str | None
    bed: str | None
    request_id: str | None
    status: str
    priority: str
    description: str
    created_at: datetime
    created_by: str
    expected_minutes: int
    accept_by: datetime
    finish_by: datetime
    accepted_at: datetime | None
    accepted_by: str | None
    started_at: datetime | None
    started_by: str | None
    done_at: datetime | None
    done_by: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    escalation_level: int
    waiting_minutes: float = Field(description="minutes since it was requested, until done")
    overdue: bool
    version: int


class EscalationRead(BaseModel):
    id: str
    task_id: str
    team: str
    level: int
    breach: str
    target: str
    reason: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None
    resolved_at: datetime | None
    open: bool


class AcknowledgeIn(StrictRequest):
    note: str | None = Field(default=None, max_length=500)
