"""Virtual wards: enrolment, devices, the caseload, and alert triage.

A virtual-ward place is a bed (``virtual``) in a virtual-ward site, so an enrolment is a
stay in that place plus a monitoring plan: occupancy, SitReps and the event log count it
like any other bed. Readings come in through :class:`~wardwatch.virtualward.ingest.Ingestor`.
Device rules live in :mod:`~wardwatch.virtualward.devices` and alert triage in
:mod:`~wardwatch.virtualward.triage`; this service keeps the public methods and delegates.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wardwatch.capacity.lookups import open_stay
from wardwatch.capacity.models import Bed, Patient, Site, Stay, Ward
from wardwatch.capacity.service import CapacityService
from wardwatch.capacity.states import BedState
from wardwatch.config import Settings
from wardwatch.core.actor import SYSTEM, Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.eventlog import EventRecord
from wardwatch.db.session import Database, Tx
from wardwatch.flow.schemas import BedRequestCreate, BedRequestRead
from wardwatch.flow.service import FlowService
from wardwatch.tasks.models import Team
from wardwatch.tasks.teams import team_for_site
from wardwatch.virtualward import compact, views
from wardwatch.virtualward.alerting import AlertChecker
from wardwatch.virtualward.devices import DeviceRegistry
from wardwatch.virtualward.ingest import Ingestor
from wardwatch.virtualward.models import (
    Alert,
    DeviceLink,
    Enrolment,
    Rejected,
)
from wardwatch.virtualward.schemas import (
    AlertActionIn,
    AlertRead,
    DeviceIn,
    DeviceRead,
    EndRequest,
    EnrolmentRead,
    EnrolRequest,
    LinkRequest,
    PlanIn,
    RejectedRead,
    ScaleUpdate,
    ScoreRead,
    StepUpRequest,
    ThresholdsUpdate,
)
from wardwatch.virtualward.triage import Triage

#: Bed events that take a patient out of a virtual-ward place, and why.
LEAVING = {
    "stay.discharged": "discharged",
    "stay.transferred_out": "stepped_up",
    "stay.admission_cancelled": "cancelled",
}
VW_TEAM = "virtual_ward"


class VirtualWardService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        capacity: CapacityService,
        flow: FlowService,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.capacity = capacity
        self.flow = flow
        self.ingestor = Ingestor(db, clock, settings)
        self.writer = self.ingestor.alerts
        self.checker = AlertChecker(self.writer)
        self.triage = Triage(db, clock, self.writer)
        self.registry = DeviceRegistry(db, clock)

    # --- enrolment -----------------------------------------------------------------------

    def enrol(self, req: EnrolRequest, actor: Actor) -> EnrolmentRead:
        with self.db.transaction() as tx:
            s = tx.session
            ward = s.scalar(select(Ward).where(Ward.code == req.ward))
            if ward is None:
                raise NotFound(f"no ward {req.ward}")
            site = s.get(Site, ward.site_id)
            if site is None or site.kind != "virtual_ward":
                raise ValidationFailed(f"ward {req.ward} is not a virtual ward")
            bed_id = req.bed_id or self._free_place(s, ward)
            team = self._team(s, site, req.team)
            patient = _patient(s, req.patient.nhs_number, req.patient.local_id)
            current = (
                s.scalar(
                    select(Stay).where(Stay.patient_id == patient.id, Stay.discharged_at.is_(None))
                )
                if patient is not None
                else None
            )
            if current is not None:
                # Step down: the patient's hospital stay moves to the virtual-ward place.
                stay = self.capacity.moves.transfer(tx, current, bed_id, actor, reason="step down")
            else:
                stay = self.capacity.moves.admit(
                    tx, bed_id, req.patient, actor, source="virtual_ward"
                )
            bed = s.get(Bed, stay.bed_id)
            if bed is None or not bed.virtual or bed.ward_id != ward.id:
                raise ValidationFailed(f"bed {bed_id} is not a place on virtual ward {req.ward}")
            now = self.clock.now()
            enrolment = Enrolment(
                id=new_id("vwe"),
                patient_id=stay.patient_id,
                stay_id=stay.id,
                bed_id=bed.id,
                site_id=site.id,
                team_id=team.id,
                enrolled_at=now,
                enrolled_by=actor.label,
                plan=req.plan.model_dump(),
                scale=1,
                thresholds=_thresholds(req.thresholds) if req.thresholds else None,
                recent_totals=[],
            )
            s.add(enrolment)
            s.flush()
            for serial in req.devices:
                self._link(tx, enrolment, serial, now, actor)
            self._log(tx, enrolment, "vw.enrolled", actor, data={"plan": enrolment.plan["mode"]})
            enrolment_id = enrolment.id
        return self.get(enrolment_id)

    def _free_place(self, s: Session, ward: Ward) -> str:
        bed_id = s.scalar(
            select(Bed.id)
            .where(Bed.ward_id == ward.id, Bed.state == BedState.AVAILABLE.value)
            .order_by(Bed.code)
            .limit(1)
        )
        if bed_id is None:
            raise Conflict(f"virtual ward {ward.code} has no free place")
        return bed_id

    @staticmethod
    def _team(s: Session, site: Site, code: str | None) -> Team:
        if code is None:
            return team_for_site(s, site.id, VW_TEAM)
        team = s.scalar(select(Team).where(Team.code == code))
        if team is None:
            raise NotFound(f"no team {code}")
        return team

    def end(self, enrolment_id: str, req: EndRequest, actor: Actor) -> EnrolmentRead:
        """Discharge from the virtual ward: the place is free at once (nothing to clean)."""
        with self.db.transaction() as tx:
            enrolment = self._open(tx.session, enrolment_id)
            stay = open_stay(tx.session, enrolment.stay_id)
            self.capacity.moves.discharge(tx, stay, actor, destination=req.destination, pathway=0)
            enrolment.end_reason = req.reason  # the reactor keeps a reason already set
        return self.get(enrolment_id)

    def step_up(self, enrolment_id: str, req: StepUpRequest, actor: Actor) -> BedRequestRead:
        """Ask for a hospital bed; the enrolment ends when the patient moves into it."""
        with self.db.read() as s:
            enrolment = self._open(s, enrolment_id)
            stay_id = enrolment.stay_id
            ward_code = s.scalar(
                select(Ward.code)
                .join(Bed, Bed.ward_id == Ward.id)
                .join(Stay, Stay.bed_id == Bed.id)
                .where(Stay.id == stay_id)
            )
        request = self.flow.create(
            BedRequestCreate(
                stay_id=stay_id,
                site=req.site,
                specialty=req.specialty,
                source="other_site",
                priority=req.priority,
                from_location=f"virtual ward {ward_code}: {req.reason}"[:120],
            ),
            actor,
        )
        with self.db.transaction() as tx:
            enrolment = self._open(tx.session, enrolment_id)
            self._log(
                tx,
                enrolment,
                "vw.step_up_requested",
                actor,
                data={"request": request.id, "to_site": req.site},
                reason=req.reason,
            )
        return request

    def on_record(self, tx: Tx, rec: EventRecord) -> None:
        """A patient leaving a virtual-ward place ends their enrolment (reactor)."""
        why = LEAVING.get(rec.type)
        if why is None or rec.stay_id is None:
            return
        # The bed first: the move itself has just read it (no statement), and most moves
        # leave a hospital bed.
        bed = tx.session.get(Bed, rec.bed_id) if rec.bed_id else None
        if bed is not None and not bed.virtual:
            return  # the move that left a hospital bed (the step down itself)
        enrolment = tx.session.scalar(
            select(Enrolment).where(Enrolment.stay_id == rec.stay_id, Enrolment.ended_at.is_(None))
        )
        if enrolment is None:
            return
        actor = Actor.from_label(rec.actor)
        if rec.type == "stay.transferred_out":
            stay = tx.session.get(Stay, rec.stay_id)
            target = tx.session.get(Bed, stay.bed_id) if stay is not None else None
            if target is not None and target.virtual:
                # From one virtual place to another: still monitored, at the new place.
                enrolment.bed_id = target.id
                tx.scratch.get("vw_places", {}).pop(enrolment.id, None)
                self._log(tx, enrolment, "vw.moved", actor, data={"to_bed": target.code})
                return
        enrolment.ended_at = rec.at
        enrolment.end_reason = enrolment.end_reason or why
        for link in tx.session.scalars(
            select(DeviceLink).where(
                DeviceLink.enrolment_id == enrolment.id, DeviceLink.unlinked_at.is_(None)
            )
        ):
            link.unlinked_at, link.unlinked_by = rec.at, actor.label
        for alert in tx.session.scalars(
            select(Alert).where(Alert.enrolment_id == enrolment.id, Alert.status != "resolved")
        ):
            self.writer.close(tx, alert, enrolment, actor, f"patient left the virtual ward ({why})")
        self._log(tx, enrolment, "vw.ended", actor, data={"end_reason": enrolment.end_reason})

    # --- plan, thresholds, scale ---------------------------------------------------------

    def set_plan(self, enrolment_id: str, plan: PlanIn, actor: Actor) -> EnrolmentRead:
        with self.db.transaction() as tx:
            enrolment = self._open(tx.session, enrolment_id)
            enrolment.plan = plan.model_dump()
            self._log(tx, enrolment, "vw.plan_changed", actor, data={"mode": plan.mode})
        return self.get(enrolment_id)

    def set_thresholds(
        self, enrolment_id: str, req: ThresholdsUpdate, actor: Actor
    ) -> EnrolmentRead:
        with self.db.transaction() as tx:
            enrolment = self._open(tx.session, enrolment_id)
            enrolment.thresholds = _thresholds(req.thresholds) or None
            self._log(
                tx, enrolment, "vw.thresholds_set", actor, data={"thresholds": enrolment.thresholds}
            )
        return self.get(enrolment_id)

    def set_scale(self, enrolment_id: str, req: ScaleUpdate, actor: Actor) -> EnrolmentRead:
        """SpO2 scale 2 is a clinician's decision: who, when and why are kept."""
        with self.db.transaction() as tx:
            enrolment = self._open(tx.session, enrolment_id)
            if enrolment.scale == req.scale:
                raise Conflict(f"the patient is already on SpO2 scale {req.scale}")
            now = self.clock.now()
            enrolment.scale = req.scale
            enrolment.scale_set_by, enrolment.scale_set_at = actor.label, now
            enrolment.scale_reason = req.reason
            self._log(
                tx, enrolment, "vw.scale_set", actor, data={"scale": req.scale}, reason=req.reason
            )
            tx.audit(
                at=now,
                actor=actor,
                action="update",
                resource="vw_enrolment",
                ids=[enrolment.id],
                detail=f"SpO2 scale {req.scale}: {req.reason}",
            )
        return self.get(enrolment_id)

    # --- devices (the rules live in devices.py; the enrolment's events are recorded here) ---

    def register_device(self, req: DeviceIn, actor: Actor) -> DeviceRead:
        return self.registry.register(req, actor)

    def device(self, serial: str) -> DeviceRead:
        return self.registry.get(serial)

    def devices(self) -> list[DeviceRead]:
        return self.registry.all()

    def link(self, enrolment_id: str, req: LinkRequest, actor: Actor) -> EnrolmentRead:
        with self.db.transaction() as tx:
            enrolment = self._open(tx.session, enrolment_id)
            at = self.registry.link_time(enrolment, req.at)
            self._link(tx, enrolment, req.serial, at, actor)
        return self.get(enrolment_id)

    def _link(self, tx: Tx, enrolment: Enrolment, serial: str, at: datetime, actor: Actor) -> None:
        self.registry.link(tx.session, enrolment, serial, at, actor)
        self._log(tx, enrolment, "vw.device_linked", actor, data={"device": serial})

    def unlink(self, enrolment_id: str, serial: str, actor: Actor) -> EnrolmentRead:
        with self.db.transaction() as tx:
            enrolment = self._get(tx.session, enrolment_id)
            self.registry.unlink(tx.session, enrolment, serial, actor)
            self._log(tx, enrolment, "vw.device_unlinked", actor, data={"device": serial})
        return self.get(enrolment_id)

    # --- reading the caseload ------------------------------------------------------------

    def get(self, enrolment_id: str) -> EnrolmentRead:
        with self.db.read() as s:
            found = views.enrolments(s, self.clock.now(), ids=[enrolment_id], ended=True)
        if not found:
            raise NotFound(f"no enrolment {enrolment_id}")
        return found[0]

    def caseload(
        self, *, ward: str | None = None, team: str | None = None, ended: bool = False
    ) -> list[EnrolmentRead]:
        """Patients, most at risk first: open emergency alerts, then the latest NEWS2."""
        with self.db.read() as s:
            return views.enrolments(s, self.clock.now(), ward=ward, team=team, ended=ended)

    def scores(
        self, enrolment_id: str, *, since: datetime | None = None, limit: int = 500
    ) -> list[ScoreRead]:
        with self.db.read() as s:
            self._get(s, enrolment_id)
            return views.scores(s, self.clock.now(), enrolment_id, since=since, limit=limit)

    def readings(
        self, enrolment_id: str, *, since: datetime | None = None, limit: int = 5000
    ) -> dict[str, list[tuple[datetime, float | str | None]]]:
        with self.db.read() as s:
            self._get(s, enrolment_id)
            return views.readings(s, enrolment_id, since=since, limit=limit)

    def rejected(
        self, *, source: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[RejectedRead]:
        """Readings and messages refused, newest first, with the reason and what was sent."""
        with self.db.read() as s:
            q = select(Rejected).order_by(Rejected.id.desc()).limit(limit)
            if source is not None:
                q = q.where(Rejected.source == source)
            if since is not None:
                q = q.where(Rejected.received_at >= since)
            return [
                RejectedRead(
                    id=r.id,
                    received_at=r.received_at,
                    source=r.source,
                    sender=r.sender,
                    reason=r.reason,
                    payload=r.payload,
                )
                for r in s.scalars(q)
            ]

    # --- alerts --------------------------------------------------------------------------

    def alerts(
        self,
        *,
        status: str | None = "open",
        team: str | None = None,
        enrolment: str | None = None,
        limit: int = 500,
    ) -> list[AlertRead]:
        with self.db.read() as s:
            return views.alerts(
                s,
                self.clock.now(),
                status=status,
                team=team,
                enrolment_ids=[enrolment] if enrolment else None,
                limit=limit,
            )

    def alert(self, alert_id: str) -> AlertRead:
        with self.db.read() as s:
            found = views.alerts(s, self.clock.now(), ids=[alert_id], status=None, notes=True)
        if not found:
            raise NotFound(f"no alert {alert_id}")
        return found[0]

    def acknowledge(self, alert_id: str, actor: Actor, version: int | None = None) -> AlertRead:
        self.triage.acknowledge(alert_id, actor, version)
        return self.alert(alert_id)

    def act(
        self, alert_id: str, req: AlertActionIn, actor: Actor, version: int | None = None
    ) -> AlertRead:
        self.triage.act(alert_id, req, actor, version)
        return self.alert(alert_id)

    def resolve(
        self, alert_id: str, note: str | None, actor: Actor, version: int | None = None
    ) -> AlertRead:
        self.triage.resolve(alert_id, note, actor, version)
        return self.alert(alert_id)

    def note(self, alert_id: str, text: str, actor: Actor) -> AlertRead:
        self.triage.note(alert_id, text, actor)
        return self.alert(alert_id)

    def receive_compact(self, body: bytes | str, source: str, actor: Actor) -> dict[str, Any]:
        """A compact JSON message (MQTT or the API) in: the ingest result, or ``error`` when
        the message as a whole could not be read (it is kept for inspection either way)."""
        try:
            readings, batteries, refused = compact.parse(body)
        except compact.PayloadError as exc:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            self.ingestor.ingest(
                [],
                source=source,
                actor=actor,
                rejected=[("unknown sender", str(exc), text[:20000])],
            )
            return {"error": str(exc)}
        result = self.ingestor.ingest(
            readings, source=source, actor=actor, batteries=batteries, rejected=refused
        )
        out = result.to_json()
        # Refusals made while reading the message come first, numbered separately.
        out["refused_in_message"] = [{"sender": s, "reason": r} for s, r, _ in refused]
        return out

    def check_due(self, actor: Actor = SYSTEM) -> list[str]:
        """Escalate unanswered alerts and raise missed-reading alerts; the alert ids."""
        with self.db.transaction() as tx:
            return [a.id for a in self.checker.run(tx, actor)]

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    def _get(s: Session, enrolment_id: str) -> Enrolment:
        enrolment = s.get(Enrolment, enrolment_id)
        if enrolment is None:
            raise NotFound(f"no enrolment {enrolment_id}")
        return enrolment

    def _open(self, s: Session, enrolment_id: str) -> Enrolment:
        enrolment = self._get(s, enrolment_id)
        if enrolment.ended_at is not None:
            raise Conflict(f"the patient left the virtual ward at {enrolment.ended_at.isoformat()}")
        return enrolment

    def _log(
        self,
        tx: Tx,
        enrolment: Enrolment,
        type: str,
        actor: Actor,
        *,
        data: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        from wardwatch.virtualward.alerting import place_of

        where = place_of(tx, enrolment)
        tx.record(
            type,
            at=self.clock.now(),
            actor=actor,
            site_id=enrolment.site_id,
            site_code=where["site"],
            ward_id=where["ward_id"],
            ward_code=where["ward"],
            bed_id=where["bed_id"],
            stay_id=enrolment.stay_id,
            reason=reason,
            data={"enrolment": enrolment.id, "team": where["team"], **(data or {})},
        )


def _patient(s: Session, nhs_number: str | None, local_id: str | None) -> Patient | None:
    if nhs_number:
        found = s.scalar(select(Patient).where(Patient.nhs_number == nhs_number))
        if found is not None:
            return found
    if local_id:
        return s.scalar(select(Patient).where(Patient.local_id == local_id))
    return None


def _thresholds(limits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = defaultdict(dict)
    for name, lim in limits.items():
        data = lim.model_dump() if hasattr(lim, "model_dump") else dict(lim)
        out[name] = {k: v for k, v in data.items() if v is not None}
    return dict(out)
