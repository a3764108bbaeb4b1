"""HTTP routes for virtual wards: enrolments, devices, readings, scores and alert triage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.flow.schemas import BedRequestRead
from wardwatch.virtualward.schemas import (
    AlertActionIn,
    AlertRead,
    DeviceIn,
    DeviceRead,
    EndRequest,
    EnrolmentRead,
    EnrolRequest,
    LinkRequest,
    NoteIn,
    PlanUpdate,
    RejectedRead,
    ResolveIn,
    ScaleUpdate,
    ScoreRead,
    StepUpRequest,
    ThresholdsUpdate,
)

router = APIRouter(prefix="/api", tags=["virtual wards"])
Reader = Annotated[Principal, principal_for(P.PATIENTS_READ)]
Carer = Annotated[Principal, principal_for(P.VW_CARE)]
Sender = Annotated[Principal, principal_for(P.VITALS_SEND)]
FeedsAdmin = Annotated[Principal, principal_for(P.FEEDS_ADMIN)]
#: The alert version the person saw: the step is refused if the alert has moved on since.
Seen = Annotated[int | None, Query(ge=1, description="the alert version you saw")]


@router.get("/virtual-ward/caseload")
def caseload(
    rt: RuntimeDep,
    _: Reader,
    ward: str | None = None,
    team: str | None = None,
    ended: bool = False,
) -> list[EnrolmentRead]:
    """Patients on virtual wards, most at risk first, with their latest NEWS2 (and its age),
    open alerts and devices."""
    return rt.virtualward.caseload(ward=ward, team=team, ended=ended)


@router.post("/virtual-ward/enrolments", status_code=201)
def enrol(req: EnrolRequest, rt: RuntimeDep, who: Carer) -> EnrolmentRead:
    """Admit a patient to a virtual-ward place with a monitoring plan (a patient already in
    hospital is stepped down: their stay moves to the place)."""
    return rt.virtualward.enrol(req, who.actor)


@router.get("/virtual-ward/enrolments/{enrolment_id}")
def get_enrolment(enrolment_id: str, rt: RuntimeDep, _: Reader) -> EnrolmentRead:
    return rt.virtualward.get(enrolment_id)


@router.post("/virtual-ward/enrolments/{enrolment_id}/end")
def end(enrolment_id: str, req: EndRequest, rt: RuntimeDep, who: Carer) -> EnrolmentRead:
    """Discharge from the virtual ward; the place is free at once."""
    return rt.virtualward.end(enrolment_id, req, who.actor)


@router.post("/virtual-ward/enrolments/{enrolment_id}/step-up", status_code=201)
def step_up(enrolment_id: str, req: StepUpRequest, rt: RuntimeDep, who: Carer) -> BedRequestRead:
    """Ask for a hospital bed (a bed request); monitoring goes on until the patient moves."""
    return rt.virtualward.step_up(enrolment_id, req, who.actor)


@router.put("/virtual-ward/enrolments/{enrolment_id}/plan")
def set_plan(enrolment_id: str, req: PlanUpdate, rt: RuntimeDep, who: Carer) -> EnrolmentRead:
    return rt.virtualward.set_plan(enrolment_id, req.plan, who.actor)


@router.put("/virtual-ward/enrolments/{enrolment_id}/thresholds")
def set_thresholds(
    enrolment_id: str, req: ThresholdsUpdate, rt: RuntimeDep, who: Carer
) -> EnrolmentRead:
    """Patient-specific alert limits (replace the whole set; an empty object clears them)."""
    return rt.virtualward.set_thresholds(enrolment_id, req, who.actor)


@router.put("/virtual-ward/enrolments/{enrolment_id}/scale")
def set_scale(enrolment_id: str, req: ScaleUpdate, rt: RuntimeDep, who: Carer) -> EnrolmentRead:
    """SpO2 scale 1 or 2 for this patient: a clinician's decision, recorded with who, when
    and why."""
    return rt.virtualward.set_scale(enrolment_id, req, who.actor)


@router.post("/virtual-ward/enrolments/{enrolment_id}/devices")
def link_device(enrolment_id: str, req: LinkRequest, rt: RuntimeDep, who: Carer) -> EnrolmentRead:
    return rt.virtualward.link(enrolment_id, req, who.actor)


@router.delete("/virtual-ward/enrolments/{enrolment_id}/devices/{serial}")
def unlink_device(enrolment_id: str, serial: str, rt: RuntimeDep, who: Carer) -> EnrolmentRead:
    return rt.virtualward.unlink(enrolment_id, serial, who.actor)


@router.get("/virtual-ward/enrolments/{enrolment_id}/scores")
def scores(
    enrolment_id: str,
    rt: RuntimeDep,
    _: Reader,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[ScoreRead]:
    return rt.virtualward.scores(enrolment_id, since=since, limit=limit)


@router.get("/virtual-ward/enrolments/{enrolment_id}/readings")
def readings(
    enrolment_id: str,
    rt: RuntimeDep,
    _: Reader,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
) -> dict[str, list[tuple[datetime, Any]]]:
    """Each parameter's readings, oldest first (the trend chart's data)."""
    return rt.virtualward.readings(enrolment_id, since=since, limit=limit)


@router.get("/virtual-ward/devices")
def devices(rt: RuntimeDep, _: Reader) -> list[DeviceRead]:
    return rt.virtualward.devices()


@router.post("/virtual-ward/devices", status_code=201)
def register_device(req: DeviceIn, rt: RuntimeDep, who: Carer) -> DeviceRead:
    return rt.virtualward.register_device(req, who.actor)


@router.post("/readings")
async def post_readings(request: Request, rt: RuntimeDep, who: Sender) -> JSONResponse:
    """Readings in the compact JSON payload (see docs/integrations/devices.md). Answers
    once they are durable: what was stored, what was a resend, and each refusal's reason."""
    import asyncio

    body = await request.body()
    result = await asyncio.to_thread(rt.virtualward.receive_compact, body, "api", who.actor)
    return JSONResponse(result, status_code=200 if not result.get("error") else 400)


@router.get("/virtual-ward/rejected")
def rejected(
    rt: RuntimeDep,
    _: FeedsAdmin,
    source: Annotated[str | None, Query(pattern="^(mqtt|fhir|hl7|api)$")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[RejectedRead]:
    """Readings and messages refused (newest first): the reason and exactly what was sent,
    for the integration engineer to fix at the source. Nothing refused is ever scored."""
    return rt.virtualward.rejected(source=source, since=since, limit=limit)


@router.get("/virtual-ward/alerts")
def alerts(
    rt: RuntimeDep,
    _: Reader,
    status: Annotated[
        str, Query(pattern="^(open|new|acknowledged|actioned|resolved|all)$")
    ] = "open",
    team: str | None = None,
    enrolment: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AlertRead]:
    """Alerts, unanswered and most severe first, then the least time left; ``enrolment``
    gives one patient's alerts (with ``status=all``, their history)."""
    return rt.virtualward.alerts(
        status=None if status == "all" else status, team=team, enrolment=enrolment, limit=limit
    )


@router.get("/virtual-ward/alerts/{alert_id}")
def get_alert(alert_id: str, rt: RuntimeDep, _: Reader) -> AlertRead:
    return rt.virtualward.alert(alert_id)


@router.post("/virtual-ward/alerts/{alert_id}/acknowledge")
def acknowledge(alert_id: str, rt: RuntimeDep, who: Carer, version: Seen = None) -> AlertRead:
    return rt.virtualward.acknowledge(alert_id, who.actor, version)


@router.post("/virtual-ward/alerts/{alert_id}/action")
def action(
    alert_id: str, req: AlertActionIn, rt: RuntimeDep, who: Carer, version: Seen = None
) -> AlertRead:
    """What was done: called patient, home visit, escalated to hospital or 999, or no
    action (with a reason)."""
    return rt.virtualward.act(alert_id, req, who.actor, version)


@router.post("/virtual-ward/alerts/{alert_id}/resolve")
def resolve(
    alert_id: str, req: ResolveIn, rt: RuntimeDep, who: Carer, version: Seen = None
) -> AlertRead:
    return rt.virtualward.resolve(alert_id, req.note, who.actor, version)


@router.post("/virtual-ward/alerts/{alert_id}/notes")
def note(alert_id: str, req: NoteIn, rt: RuntimeDep, who: Carer) -> AlertRead:
    return rt.virtualward.note(alert_id, req.text, who.actor)
