"""HTTP routes for bed requests: thin wrappers over the flow service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.flow.schemas import AllocateIn, BedRequestCreate, BedRequestRead, CancelIn, Candidate

router = APIRouter(prefix="/api/bed-requests", tags=["flow"])
PatientReader = Annotated[Principal, principal_for(P.PATIENTS_READ)]
PatientWriter = Annotated[Principal, principal_for(P.PATIENTS_WRITE)]


@router.post("", status_code=201)
def create(req: BedRequestCreate, rt: RuntimeDep, who: PatientWriter) -> BedRequestRead:
    """A patient needs a bed: from an ED decision to admit, a transfer, another site."""
    return rt.flow.create(req, who.actor)


@router.get("")
def list_requests(
    rt: RuntimeDep,
    _: PatientReader,
    site: str | None = None,
    status: Annotated[str, Query(pattern="^(open|all)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[BedRequestRead]:
    """The queue: open requests, most urgent then longest waiting first."""
    return rt.flow.list_requests(site=site, open_only=status == "open", limit=limit)


@router.get("/{request_id}")
def get(request_id: str, rt: RuntimeDep, _: PatientReader) -> BedRequestRead:
    return rt.flow.get(request_id)


@router.get("/{request_id}/suggestions")
def suggestions(
    request_id: str,
    rt: RuntimeDep,
    _: PatientReader,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[Candidate]:
    """Beds that could take the patient, best first, each with its reasons."""
    return rt.flow.suggestions(request_id, limit=limit)


@router.post("/{request_id}/allocate")
def allocate(
    request_id: str, body: AllocateIn, rt: RuntimeDep, who: PatientWriter
) -> BedRequestRead:
    """Reserve the bed and ask the porters to bring the patient."""
    return rt.flow.allocate(request_id, body.bed_id, who.actor)


@router.post("/{request_id}/arrive")
def arrive(request_id: str, rt: RuntimeDep, who: PatientWriter) -> BedRequestRead:
    """The patient is on the ward: the bed is occupied (the porter task, if open, is done)."""
    return rt.flow.arrive(request_id, who.actor)


@router.post("/{request_id}/cancel")
def cancel(request_id: str, body: CancelIn, rt: RuntimeDep, who: PatientWriter) -> BedRequestRead:
    return rt.flow.cancel(request_id, body.reason, who.actor)
