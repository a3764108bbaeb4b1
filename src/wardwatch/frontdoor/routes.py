"""HTTP routes of the front door: the ambulance feed, the handover board's data, ED flow."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.frontdoor.schemas import (
    AttendanceIn,
    AttendanceRead,
    DecisionIn,
    DepartureIn,
    FeedResult,
    HandoverFeed,
    HandoverMessage,
    HandoverRead,
)

router = APIRouter(tags=["front door"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
PatientReader = Annotated[Principal, principal_for(P.PATIENTS_READ)]
Crew = Annotated[Principal, principal_for(P.HANDOVERS_WRITE)]
EdWriter = Annotated[Principal, principal_for(P.ED_WRITE)]
Site = Annotated[str | None, Query(max_length=32, description="a site code; all sites if absent")]


@router.post("/api/handovers/feed")
def feed(body: HandoverFeed, rt: RuntimeDep, who: Crew) -> list[FeedResult]:
    """The ambulance service's feed: pre-alert, arrival, handover, clear, cancel.

    Each message is applied on its own: a refused one says why (``ok: false``, ``error``)
    and the others still land. A message sent twice is a ``repeat`` and changes nothing.
    """
    return rt.frontdoor.handovers.feed(body.messages, who.actor)


@router.post("/api/handovers")
def message(body: HandoverMessage, rt: RuntimeDep, who: Crew, response: Response) -> HandoverRead:
    """One feed message; 409/422 with the reason when it cannot be applied."""
    read, repeat = rt.frontdoor.handovers.apply(body, who.actor)
    response.status_code = 200 if repeat else 201
    return read


@router.get("/api/handovers")
def list_handovers(
    rt: RuntimeDep,
    _: Reader,
    site: Site = None,
    day: Annotated[date | None, Query(description="arrivals on this local day")] = None,
    status: Annotated[str, Query(pattern="^(open|all)$")] = "open",
) -> list[HandoverRead]:
    """Crews waiting and expected (``open``), or every handover of a day."""
    since = until = None
    if day is not None:
        since, until = rt.frontdoor.day(day)
    return rt.frontdoor.handovers.list(
        site=site, open_only=status == "open" and day is None, since=since, until=until
    )


@router.get("/api/handovers/summary")
def handover_summary(
    rt: RuntimeDep,
    _: Reader,
    day: Annotated[date | None, Query(description="local day; today if absent")] = None,
) -> dict[str, Any]:
    """Per site and for the system: arrivals, breaches of 15/30/45/60 min, hours lost."""
    return rt.frontdoor.handover_summary(day)


@router.get("/api/handovers/{handover_id}")
def get_handover(handover_id: str, rt: RuntimeDep, _: Reader) -> HandoverRead:
    return rt.frontdoor.handovers.get(handover_id)


@router.post("/api/ed/attendances", status_code=201)
def ed_arrive(body: AttendanceIn, rt: RuntimeDep, who: EdWriter) -> AttendanceRead:
    """A patient arrives in the ED (the ED system's attendance number as ``reference``)."""
    return rt.frontdoor.ed.arrive(body, who.actor)


@router.post("/api/ed/attendances/{attendance_id}/decision-to-admit")
def ed_decide(
    attendance_id: str, body: DecisionIn, rt: RuntimeDep, who: EdWriter
) -> AttendanceRead:
    """Decision to admit: queues a bed request for the patient (same transaction)."""
    return rt.frontdoor.ed.decide_to_admit(attendance_id, body, who.actor)


@router.post("/api/ed/attendances/{attendance_id}/depart")
def ed_depart(
    attendance_id: str, body: DepartureIn, rt: RuntimeDep, who: EdWriter
) -> AttendanceRead:
    """The patient leaves the ED; an open bed request is cancelled unless admitted."""
    return rt.frontdoor.ed.depart(attendance_id, body, who.actor)


@router.get("/api/ed/attendances")
def ed_list(
    rt: RuntimeDep,
    _: PatientReader,
    site: Site = None,
    status: Annotated[str, Query(pattern="^(open|all)$")] = "open",
) -> list[AttendanceRead]:
    """Patients in the department now (``open``), longest there first."""
    return rt.frontdoor.ed.list(site=site, open_only=status == "open")


@router.get("/api/ed/attendances/{attendance_id}")
def ed_get(attendance_id: str, rt: RuntimeDep, _: PatientReader) -> AttendanceRead:
    return rt.frontdoor.ed.get(attendance_id)


@router.get("/api/ed/summary")
def ed_summary(
    rt: RuntimeDep,
    _: Reader,
    day: Annotated[date | None, Query(description="local day; today if absent")] = None,
) -> dict[str, Any]:
    """Per site and for the system: 4-hour performance, 12-hour waits, who waits for a bed."""
    return rt.frontdoor.ed_summary(day)
