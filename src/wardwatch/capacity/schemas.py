"""Pydantic shapes: the system YAML spec, API requests and API responses."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from wardwatch.capacity.states import BedState
from wardwatch.core.schemas import StrictRequest as _Strict
from wardwatch.frontdoor.opel_config import OpelConfig

SiteKind = Literal["acute", "community", "care_home", "virtual_ward"]
WardKind = Literal["core", "escalation"]
AgeGroup = Literal["adult", "paediatric"]
SexPolicy = Literal["mixed", "male", "female"]
Sex = Literal["male", "female", "other", "unknown"]
Code = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --- the system file -----------------------------------------------------------------------


class WardSpec(_Strict):
    code: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = Field(min_length=1, max_length=200)
    specialty: str = Field(min_length=1, max_length=80)
    kind: WardKind = "core"
    age_group: AgeGroup = "adult"
    general_acute: bool = True
    sex_policy: SexPolicy = "mixed"
    beds: int = Field(ge=0, le=2000)
    staffed_beds: int | None = Field(default=None, ge=0)
    side_rooms: int = Field(default=0, ge=0)
    pas_point_of_care: str | None = Field(
        default=None, max_length=40, description="PV1-3.1 the PAS uses (default: the code)"
    )
    pas_beds: dict[str, int] | None = Field(
        default=None, description="PAS bed labels that are not plain numbers → bed number"
    )

    @model_validator(mode="after")
    def _bed_counts(self) -> WardSpec:
        if self.staffed_beds is not None and self.staffed_beds > self.beds:
            raise ValueError(f"staffed_beds ({self.staffed_beds}) exceeds beds ({self.beds})")
        if self.side_rooms > self.beds:
            raise ValueError(f"side_rooms ({self.side_rooms}) exceeds beds ({self.beds})")
        return self


class SiteSpec(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    kind: SiteKind
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    pas_facility: str | None = Field(
        default=None, max_length=40, description="PV1-3.4 the PAS uses (default: the code)"
    )
    wards: list[WardSpec] = Field(default_factory=list)
    #: This site's own OPEL settings, replacing the system's (acute sites only).
    opel: OpelConfig | None = None

    @model_validator(mode="after")
    def _opel_for_acute(self) -> SiteSpec:
        if self.opel is not None and self.kind != "acute":
            raise ValueError(f"opel: OPEL is computed for acute sites only, not a {self.kind}")
        return self


class SystemInfo(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    occupancy_target: float = Field(default=0.92, gt=0, le=1)
    #: The OPEL settings of every acute site without its own (built-in default if absent).
    opel: OpelConfig | None = None


class SystemSpec(_Strict):
    system: SystemInfo
    sites: list[SiteSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> SystemSpec:
        problems: list[str] = []
        seen_sites: dict[str, int] = {}
        seen_wards: dict[str, str] = {}
        for i, site in enumerate(self.sites):
            if site.code in seen_sites:
                problems.append(
                    f"site code {site.code!r} is used twice "
                    f"(sites[{seen_sites[site.code]}] and sites[{i}])"
                )
            seen_sites.setdefault(site.code, i)
            for j, ward in enumerate(site.wards):
                here = f"sites[{i}].wards[{j}]"
                if ward.code in seen_wards:
                    first = seen_wards[ward.code]
                    problems.append(f"ward code {ward.code!r} is used twice ({first} and {here})")
                seen_wards.setdefault(ward.code, here)
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --- requests ------------------------------------------------------------------------------


class SiteCreate(SiteSpec):
    pass


def _no_nulls(model: BaseModel, fields: tuple[str, ...]) -> None:
    """PATCH: leaving a field out keeps it; sending null for a required one is an error."""
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null (leave it out to keep it)")


class SiteUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    pas_facility: str | None = Field(default=None, max_length=40)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _required_stay_set(self) -> SiteUpdate:
        _no_nulls(self, ("name",))
        return self


class WardCreate(WardSpec):
    site: str = Field(description="code of the site the ward belongs to")


class WardUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    specialty: str | None = Field(default=None, min_length=1, max_length=80)
    kind: WardKind | None = None
    age_group: AgeGroup | None = None
    general_acute: bool | None = None
    sex_policy: SexPolicy | None = None
    pas_point_of_care: str | None = Field(default=None, max_length=40)
    pas_beds: dict[str, int] | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> WardUpdate:
        _no_nulls(self, ("name", "specialty", "kind", "age_group", "general_acute", "sex_policy"))
        return self


class BedsAdd(_Strict):
    count: int = Field(ge=1, le=500)
    side_rooms: int = Field(default=0, ge=0)
    state: Literal["available", "closed"] = "available"


class BedStateChange(_Strict):
    state: BedState
    reason: str | None = Field(default=None, max_length=200)


class PatientIn(_Strict):
    nhs_number: str | None = Field(default=None, description="10 digits, modulus-11 checked")
    local_id: str | None = Field(default=None, max_length=40, description="hospital number")
    sex: Sex | None = None

    @model_validator(mode="after")
    def _some_identifier(self) -> PatientIn:
        if self.local_id is not None and not self.local_id.strip():
            raise ValueError("local_id cannot be blank")
        if not self.nhs_number and not self.local_id:
            raise ValueError("a patient needs an nhs_number or a local_id")
        return self


class AdmitRequest(_Strict):
    bed_id: str
    patient: PatientIn
    source: str | None = Field(default=None, max_length=40, examples=["ed", "elective"])
    expected_discharge_date: date | None = None


class TransferRequest(_Strict):
    bed_id: str
    reason: str | None = Field(default=None, max_length=200)


class DischargeRequest(_Strict):
    destination: str = Field(min_length=1, max_length=80, examples=["usual residence"])
    pathway: int = Field(ge=0, le=3, description="discharge pathway 0-3")
    cleaning: Literal["standard", "infection"] = Field(
        default="standard", description="the clean the bed needs (infection: a deep clean)"
    )


class StayUpdate(_Strict):
    expected_discharge_date: date | None = None
    discharge_ready_date: date | None = None


# --- responses -----------------------------------------------------------------------------


class SiteRead(BaseModel):
    id: str
    code: str
    name: str
    kind: str
    lat: float | None
    lon: float | None
    ward_count: int
    bed_count: int


class WardRead(BaseModel):
    id: str
    code: str
    site: str
    name: str
    specialty: str
    kind: str
    age_group: str
    general_acute: bool
    sex_policy: str
    bed_count: int


class BedRead(BaseModel):
    id: str
    code: str
    ward: str
    site: str
    virtual: bool
    side_room: bool
    state: BedState
    state_since: datetime
    state_reason: str | None
    seconds_in_state: float
    stay_id: str | None


class StayRead(BaseModel):
    id: str
    bed_id: str
    bed_code: str
    ward: str
    site: str
    nhs_number: str | None
    local_id: str | None
    sex: str | None
    admitted_at: datetime
    source: str | None
    expected_discharge_date: date | None
    discharge_ready_date: date | None
    discharged_at: datetime | None
    discharge_destination: str | None
    discharge_pathway: int | None
    cancelled_at: datetime | None = None
    on_leave_since: datetime | None = None
    visit_number: str | None = None
    length_of_stay_days: float


class PendingRead(BaseModel):
    """An expected arrival, transfer or departure (from the PAS's A05/A14, A15, A16)."""

    id: str
    kind: str
    nhs_number: str | None
    local_id: str | None
    stay_id: str | None
    from_bed: str | None
    to_bed: str | None
    to_ward: str | None
    reserved: bool
    expected_at: datetime | None
    created_at: datetime
    source: str | None


class LoadResult(BaseModel):
    system: str
    sites_created: int
    sites_updated: int
    wards_created: int
    wards_updated: int
    beds_created: int
