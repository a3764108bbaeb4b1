"""Read models for the virtual-ward API and the caseload page (few queries each)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Bed, Patient, Site, Ward
from wardwatch.tasks.models import Team
from wardwatch.virtualward.models import (
    Alert,
    AlertNote,
    Device,
    DeviceLink,
    Enrolment,
    Reading,
    Score,
)
from wardwatch.virtualward.rules import SEVERITY_RANK
from wardwatch.virtualward.schemas import (
    AlertNoteRead,
    AlertRead,
    DeviceRead,
    EnrolmentRead,
    ScoreRead,
)

RISK_RANK = {"high": 4, "medium": 3, "low-medium": 2, "unknown": 1, "low": 0}


def _minutes(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds() / 60, 1)


def patient_label(nhs_number: str | None, local_id: str | None) -> str:
    if nhs_number:
        return f"{nhs_number[:3]} {nhs_number[3:6]} {nhs_number[6:]}"
    return local_id or "?"


def score_read(row: Score, now: datetime) -> ScoreRead:
    d = row.detail or {}
    return ScoreRead(
        id=row.id,
        at=row.at,
        oldest_at=row.oldest_at,
        age_minutes=_minutes(now, row.at),
        scale=row.scale,
        total=row.total,
        partial_total=row.partial_total,
        partial=row.partial,
        risk=row.risk,
        parameters=d.get("parameters", {}),
        values=d.get("values", {}),
        missing=d.get("missing", []),
        reasons=d.get("reasons", {}),
    )


def scores(
    s: Session, now: datetime, enrolment_id: str, *, since: datetime | None, limit: int
) -> list[ScoreRead]:
    q = select(Score).where(Score.enrolment_id == enrolment_id)
    if since is not None:
        q = q.where(Score.at >= since)
    rows = list(s.scalars(q.order_by(Score.at.desc(), Score.id.desc()).limit(limit)))
    return [score_read(r, now) for r in reversed(rows)]


def readings(
    s: Session, enrolment_id: str, *, since: datetime | None, limit: int
) -> dict[str, list[tuple[datetime, float | str | None]]]:
    q = select(Reading.parameter, Reading.at, Reading.value, Reading.text_value).where(
        Reading.enrolment_id == enrolment_id
    )
    if since is not None:
        q = q.where(Reading.at >= since)
    out: dict[str, list[tuple[datetime, float | str | None]]] = defaultdict(list)
    rows = s.execute(q.order_by(Reading.at.desc()).limit(limit)).all()
    for parameter, at, value, text in reversed(rows):
        out[parameter].append((at, text if text is not None else value))
    return dict(out)


def devices(
    s: Session, *, serial: str | None = None, enrolment_ids: Sequence[str] | None = None
) -> list[DeviceRead]:
    q = select(Device, DeviceLink).outerjoin(
        DeviceLink, (DeviceLink.device_id == Device.id) & DeviceLink.unlinked_at.is_(None)
    )
    if serial is not None:
        q = q.where(Device.serial == serial)
    if enrolment_ids is not None:
        q = q.where(DeviceLink.enrolment_id.in_(enrolment_ids))
    return [
        DeviceRead(
            id=d.id,
            serial=d.serial,
            kind=d.kind,
            model=d.model,
            last_seen_at=d.last_seen_at,
            battery_pct=d.battery_pct,
            linked_to=link.enrolment_id if link else None,
            linked_at=link.linked_at if link else None,
        )
        for d, link in s.execute(q.order_by(Device.serial))
    ]


def _alert_query() -> Select[Alert, str, str | None, str | None]:
    return (
        select(Alert, Team.code, Patient.nhs_number, Patient.local_id)
        .join(Enrolment, Enrolment.id == Alert.enrolment_id)
        .join(Patient, Patient.id == Enrolment.patient_id)
        .join(Team, Team.id == Alert.team_id)
    )


def alerts(
    s: Session,
    now: datetime,
    *,
    ids: Sequence[str] | None = None,
    enrolment_ids: Sequence[str] | None = None,
    status: str | None = "open",
    team: str | None = None,
    notes: bool = False,
    limit: int = 500,
) -> list[AlertRead]:
    q = _alert_query()
    if ids is not None:
        q = q.where(Alert.id.in_(ids))
    if enrolment_ids is not None:
        q = q.where(Alert.enrolment_id.in_(enrolment_ids))
    if status == "open":
        q = q.where(Alert.status != "resolved")
    elif status is not None:
        q = q.where(Alert.status == status)
    if team is not None:
        q = q.where(Team.code == team)
    rows = s.execute(q.order_by(Alert.due_at).limit(limit)).all()
    history: dict[str, list[AlertNoteRead]] = defaultdict(list)
    if notes and rows:
        for n in s.scalars(
            select(AlertNote)
            .where(AlertNote.alert_id.in_([r[0].id for r in rows]))
            .order_by(AlertNote.at, AlertNote.id)
        ):
            history[n.alert_id].append(AlertNoteRead(at=n.at, by=n.by, what=n.what, text=n.text))
    out = [
        AlertRead(
            id=a.id,
            enrolment_id=a.enrolment_id,
            patient=patient_label(nhs, local),
            team=team_code,
            kind=a.kind,
            group=a.grp,
            severity=a.severity,
            status=a.status,
            summary=a.summary,
            opened_at=a.opened_at,
            due_at=a.due_at,
            minutes_left=_minutes(a.due_at, now),
            level=a.level,
            repeats=a.repeats,
            action=a.action,
            action_reason=a.action_reason,
            acknowledged_by=a.acknowledged_by,
            version=a.version,
            notes=history.get(a.id, []),
        )
        for a, team_code, nhs, local in rows
    ]
    # Most severe first, then the least time left.
    out.sort(key=lambda a: (a.status != "new", -SEVERITY_RANK[a.severity], a.minutes_left))
    return out


def enrolments(
    s: Session,
    now: datetime,
    *,
    ids: Sequence[str] | None = None,
    ward: str | None = None,
    team: str | None = None,
    ended: bool = False,
) -> list[EnrolmentRead]:
    q = (
        select(Enrolment, Patient, Bed, Ward, Site, Team)
        .join(Patient, Patient.id == Enrolment.patient_id)
        .join(Bed, Bed.id == Enrolment.bed_id)
        .join(Ward, Ward.id == Bed.ward_id)
        .join(Site, Site.id == Ward.site_id)
        .join(Team, Team.id == Enrolment.team_id)
    )
    if ids is not None:
        q = q.where(Enrolment.id.in_(ids))
    if ward is not None:
        q = q.where(Ward.code == ward)
    if team is not None:
        q = q.where(Team.code == team)
    if not ended:
        q = q.where(Enrolment.ended_at.is_(None))
    rows = s.execute(q).all()
    if not rows:
        return []
    e_ids = [r[0].id for r in rows]
    latest = {
        sc.id: score_read(sc, now)
        for sc in s.scalars(
            select(Score).where(
                Score.id.in_([r[0].last_score_id for r in rows if r[0].last_score_id])
            )
        )
    }
    open_alerts: dict[str, list[AlertRead]] = defaultdict(list)
    for a in alerts(s, now, enrolment_ids=e_ids, status="open"):
        open_alerts[a.enrolment_id].append(a)
    kit: dict[str, list[DeviceRead]] = defaultdict(list)
    for d in devices(s, enrolment_ids=e_ids):
        if d.linked_to:
            kit[d.linked_to].append(d)
    out = [
        EnrolmentRead(
            id=e.id,
            patient_id=p.id,
            patient=patient_label(p.nhs_number, p.local_id),
            nhs_number=p.nhs_number,
            local_id=p.local_id,
            stay_id=e.stay_id,
            site=site.code,
            ward=ward_.code,
            bed_id=bed.id,
            bed=bed.code,
            team=t.code,
            enrolled_at=e.enrolled_at,
            ended_at=e.ended_at,
            end_reason=e.end_reason,
            plan=e.plan,
            scale=e.scale,
            scale_set_by=e.scale_set_by,
            scale_set_at=e.scale_set_at,
            thresholds=e.thresholds,
            last_reading_at=e.last_reading_at,
            latest=latest.get(e.last_score_id) if e.last_score_id else None,
            open_alerts=open_alerts.get(e.id, []),
            devices=kit.get(e.id, []),
        )
        for e, p, bed, ward_, site, t in rows
    ]
    out.sort(key=_risk_order)
    return out


def _risk_order(e: EnrolmentRead) -> tuple[int, int, int, float]:
    """Worst first: an unanswered emergency, then the latest risk and score, then the oldest."""
    worst_alert = max(
        (SEVERITY_RANK[a.severity] for a in e.open_alerts if a.status == "new"), default=0
    )
    risk = RISK_RANK.get(e.latest.risk, 1) if e.latest else 1
    points = e.latest.partial_total if e.latest else 0
    age = e.latest.age_minutes if e.latest else float("inf")
    return (-worst_alert, -risk, -points, -age)
