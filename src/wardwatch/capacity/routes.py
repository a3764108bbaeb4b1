"""HTTP routes of the capacity domain: thin wrappers over the services."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.capacity.reports import sitrep_csv
from wardwatch.capacity.schemas import (
    AdmitRequest,
    BedRead,
    BedsAdd,
    BedStateChange,
    DischargeRequest,
    LoadResult,
    PendingRead,
    SiteCreate,
    SiteRead,
    SiteUpdate,
    StayRead,
    StayUpdate,
    SystemSpec,
    TransferRequest,
    WardCreate,
    WardRead,
    WardUpdate,
)
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState

router = APIRouter(prefix="/api")

Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
PatientReader = Annotated[Principal, principal_for(P.PATIENTS_READ)]
PatientWriter = Annotated[Principal, principal_for(P.PATIENTS_WRITE)]
Cleaner = Annotated[Principal, principal_for(P.BEDS_CLEAN)]
Admin = Annotated[Principal, principal_for(P.SYSTEM_WRITE)]


# --- structure -----------------------------------------------------------------------------


@router.get("/system", tags=["system"])
def get_system(rt: RuntimeDep, _: Reader) -> dict[str, Any]:
    return {**rt.system.system_info(), "sites": rt.system.list_sites()}


@router.put("/system", tags=["system"], response_model=LoadResult)
def load_system(spec: SystemSpec, rt: RuntimeDep, who: Admin) -> LoadResult:
    """Load or update the whole system (the same document as the YAML file, as JSON)."""
    return rt.system.load(spec, who.actor)


@router.get("/sites", tags=["system"])
def list_sites(rt: RuntimeDep, _: Reader) -> list[SiteRead]:
    return rt.system.list_sites()


@router.post("/sites", tags=["system"], status_code=201)
def create_site(req: SiteCreate, rt: RuntimeDep, who: Admin) -> SiteRead:
    return rt.system.create_site(req, who.actor)


@router.get("/sites/{code}", tags=["system"])
def get_site(code: str, rt: RuntimeDep, _: Reader) -> SiteRead:
    return rt.system.get_site(code)


@router.patch("/sites/{code}", tags=["system"])
def update_site(code: str, req: SiteUpdate, rt: RuntimeDep, who: Admin) -> SiteRead:
    return rt.system.update_site(code, req, who.actor)


@router.get("/wards", tags=["system"])
def list_wards(
    rt: RuntimeDep,
    _: Reader,
    site: str | None = None,
    specialty: str | None = None,
    kind: str | None = None,
) -> list[WardRead]:
    return rt.system.list_wards(site=site, specialty=specialty, kind=kind)


@router.post("/wards", tags=["system"], status_code=201)
def create_ward(req: WardCreate, rt: RuntimeDep, who: Admin) -> WardRead:
    return rt.system.create_ward(req, who.actor)


@router.get("/wards/{code}", tags=["system"])
def get_ward(code: str, rt: RuntimeDep, _: Reader) -> WardRead:
    return rt.system.get_ward(code)


@router.patch("/wards/{code}", tags=["system"])
def update_ward(code: str, req: WardUpdate, rt: RuntimeDep, who: Admin) -> WardRead:
    return rt.system.update_ward(code, req, who.actor)


@router.post("/wards/{code}/beds", tags=["system"], status_code=201)
def add_beds(code: str, req: BedsAdd, rt: RuntimeDep, who: Admin) -> WardRead:
    return rt.system.add_beds(code, req, who.actor)


# --- beds ----------------------------------------------------------------------------------


@router.get("/beds", tags=["beds"])
def list_beds(
    rt: RuntimeDep,
    _: Reader,
    site: str | None = None,
    ward: str | None = None,
    state: BedState | None = None,
    code: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[BedRead]:
    return rt.capacity.list_beds(
        BedFilter(site=site, ward=ward, state=state, code=code, limit=limit, offset=offset)
    )


@router.get("/beds/{bed_id}", tags=["beds"])
def get_bed(bed_id: str, rt: RuntimeDep, _: Reader) -> BedRead:
    return rt.capacity.get_bed(bed_id)


@router.post("/beds/{bed_id}/state", tags=["beds"])
def change_bed_state(bed_id: str, req: BedStateChange, rt: RuntimeDep, who: Cleaner) -> BedRead:
    """Change a bed's state by hand (cleaning, blocking, closing, reserving...).

    Patient moves go through /api/stays. Housekeeping may only make the cleaning steps.
    """
    return rt.capacity.change_bed_state(
        bed_id, req.state, req.reason, who.actor, cleaning_only=not who.can(P.BEDS_WRITE)
    )


# --- stays (patient data: audited) ---------------------------------------------------------


@router.post("/stays", tags=["stays"], status_code=201)
def admit(req: AdmitRequest, rt: RuntimeDep, who: PatientWriter) -> StayRead:
    return rt.capacity.admit(req, who.actor)


@router.get("/stays", tags=["stays"])
def list_stays(
    rt: RuntimeDep,
    who: PatientReader,
    active: bool = True,
    site: str | None = None,
    ward: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StayRead]:
    stays = rt.capacity.list_stays(active=active, site=site, ward=ward, limit=limit, offset=offset)
    if stays:
        rt.auth.record_read(who, "stay", [s.id for s in stays], detail="list")
    return stays


@router.get("/stays/{stay_id}", tags=["stays"])
def get_stay(stay_id: str, rt: RuntimeDep, who: PatientReader) -> StayRead:
    stay = rt.capacity.get_stay(stay_id)
    rt.auth.record_read(who, "stay", [stay.id])
    return stay


@router.patch("/stays/{stay_id}", tags=["stays"])
def update_stay(stay_id: str, req: StayUpdate, rt: RuntimeDep, who: PatientWriter) -> StayRead:
    """Set the expected date of discharge or the discharge-ready date (no criteria to reside)."""
    return rt.capacity.update_stay(stay_id, req, who.actor)


@router.post("/stays/{stay_id}/transfer", tags=["stays"])
def transfer(stay_id: str, req: TransferRequest, rt: RuntimeDep, who: PatientWriter) -> StayRead:
    return rt.capacity.transfer(stay_id, req, who.actor)


@router.post("/stays/{stay_id}/discharge", tags=["stays"])
def discharge(stay_id: str, req: DischargeRequest, rt: RuntimeDep, who: PatientWriter) -> StayRead:
    return rt.capacity.discharge(stay_id, req, who.actor)


@router.get("/pending", tags=["stays"])
def pending(rt: RuntimeDep, who: PatientReader, site: str | None = None) -> list[PendingRead]:
    """Expected arrivals, transfers and departures (from the PAS), soonest first."""
    moves = rt.capacity.pending(site=site)
    if moves:
        rt.auth.record_read(who, "pending", [m.id for m in moves])
    return moves


# --- occupancy -----------------------------------------------------------------------------


@router.get("/occupancy", tags=["occupancy"])
def occupancy(
    rt: RuntimeDep,
    _: Reader,
    wards: bool = False,
    at: Annotated[datetime | None, Query(description="a past moment (with time zone)")] = None,
) -> dict[str, Any]:
    """Occupancy now (or at a past moment, rebuilt from the event log) for system and sites."""
    if at is not None:
        return rt.occupancy.at(at, include_wards=wards)
    return rt.occupancy.live(include_wards=wards)


@router.get("/occupancy/history", tags=["occupancy"])
def occupancy_history(
    rt: RuntimeDep,
    _: Reader,
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
    step_minutes: Annotated[int, Query(ge=1, le=10080)] = 60,
    site: str | None = None,
    ward: str | None = None,
    general_acute: bool = False,
) -> list[dict[str, Any]]:
    return rt.occupancy.history(
        start=start,
        end=end,
        step=timedelta(minutes=step_minutes),
        site=site,
        ward=ward,
        general_acute_only=general_acute,
    )


@router.get("/occupancy/long-stays", tags=["occupancy"])
def long_stays(rt: RuntimeDep, _: Reader) -> dict[str, dict[str, int]]:
    """Patients in a bed for 7+, 14+ and 21+ days, per site and for the system."""
    return rt.occupancy.long_stays()


@router.get("/sitrep", tags=["occupancy"], response_model=None)
def sitrep(
    rt: RuntimeDep,
    _: Reader,
    day: Annotated[date | None, Query(alias="date")] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> dict[str, Any] | Response:
    """The daily SitRep-style 08:00 snapshot (today's, or the date given)."""
    if day is None:
        day = rt.clock.now().astimezone(rt.occupancy.tz).date()
    report = rt.occupancy.sitrep(day)
    if format == "csv":
        return PlainTextResponse(
            sitrep_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="sitrep-{day}.csv"'},
        )
    return report
