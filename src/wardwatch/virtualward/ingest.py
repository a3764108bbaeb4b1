"""Readings in: checked, attributed to the right patient, stored once, scored, alerted on.

Every door (MQTT, FHIR, HL7 ORU^R01, the REST API) calls :meth:`Ingestor.ingest` with a
batch. One batch is one transaction: when it returns, everything it accepted is durable, so
a door acknowledges only after it returns. A reading that cannot be used is refused with its
reason and kept in ``vw_rejected``; the rest of the batch is stored all the same.

Attribution is the safety-critical step (hazard HAZ-V02): a device's reading belongs to the
patient the device was linked to *at the reading's time*, never to whoever wears it now; a
reading from a device that was not linked then, or from an unknown device, is refused
(:mod:`wardwatch.virtualward.attribution`).

The batch path uses Core statements (multi-row inserts, upserts, one query per table) rather
than the ORM, so thousands of readings a second stay cheap (:mod:`wardwatch.virtualward.bulk`);
the ORM is used only for the rare writes (alerts and their events).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from wardwatch.config import Settings
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.db.filters import one_of
from wardwatch.db.session import Database, Tx
from wardwatch.virtualward import bulk
from wardwatch.virtualward.alerting import AlertWriter
from wardwatch.virtualward.attribution import attribute
from wardwatch.virtualward.models import Device, DeviceLink, Enrolment, Latest, Rejected
from wardwatch.virtualward.news2 import News2, ObservationSet, score
from wardwatch.virtualward.readings import Prepared, RawReading, prepare
from wardwatch.virtualward.rules import push_total, score_triggers
from wardwatch.virtualward.scores import insert_scores
from wardwatch.virtualward.vitals import VitalsError

#: The parameters an observation set is built from (oxygen_concentration also says "oxygen").
SET_PARAMETERS = (
    "respiration_rate",
    "spo2",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
    "oxygen_flow",
    "oxygen_concentration",
)


@dataclass(frozen=True, slots=True)
class Refusal:
    index: int
    reason: str


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: list[Refusal] = field(default_factory=list)
    scores: int = 0
    alerts: list[str] = field(default_factory=list)  # ids of alerts raised or upgraded
    #: Per reading, in order: "stored", "duplicate" or "refused".
    outcomes: list[str] = field(default_factory=list)
    #: Key -> id of each reading this batch stored (resends are not in it), and when it was
    #: received: a door that answers with ids needs to look up only the resends.
    stored_ids: dict[str, int] = field(default_factory=dict)
    received_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "refused": [{"index": r.index, "reason": r.reason} for r in self.refused],
            "scores": self.scores,
            "alerts": self.alerts,
        }


@dataclass(frozen=True, slots=True)
class Battery:
    """A device's battery report: percent, at a time."""

    device: str
    pct: int
    at: datetime


class Ingestor:
    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.window = timedelta(minutes=settings.vw_set_window_minutes)
        self.stale = timedelta(minutes=settings.vw_stale_minutes)
        self.alerts = AlertWriter(clock, settings)

    # --- the one entry point -------------------------------------------------------------

    def ingest(
        self,
        readings: Sequence[RawReading],
        *,
        source: str,
        actor: Actor,
        batteries: Sequence[Battery] = (),
        rejected: Sequence[tuple[str, str, str]] = (),
    ) -> IngestResult:
        """Store ``readings`` (one transaction) and score what changed.

        ``rejected`` are (sender, reason, payload) the door itself refused (malformed JSON,
        a resource it could not read): kept for inspection in the same transaction.
        """
        now = self.clock.now()
        result = IngestResult(received=len(readings), outcomes=["refused"] * len(readings))
        ready: list[tuple[int, Prepared]] = []
        refusals: list[tuple[int, str]] = []
        for i, raw in enumerate(readings):
            try:
                ready.append((i, prepare(raw, now)))
            except VitalsError as exc:
                refusals.append((i, str(exc)))
        with self.db.transaction() as tx:
            s = tx.session
            enrolments, owner_of = attribute(s, ready, refusals)
            keep = [(i, p, owner_of[i]) for i, p in ready if i in owner_of]
            stored = self._store(tx, keep, now, source, result)
            self._devices(s, ready, batteries, now)
            for i, reason in sorted(refusals):
                result.refused.append(Refusal(i, reason))
            self._keep_refused(s, readings, refusals, rejected, source, now)
            touched = {e for _, p, e in stored}
            if touched:
                self._score(tx, enrolments, stored, now, result, actor)
            if batteries:
                self.alerts.battery(tx, enrolments_of(s, batteries), batteries, actor, result)
            if stored or result.alerts:
                tx.record(
                    "vw.readings",
                    at=now,
                    actor=actor,
                    data={
                        "source": source,
                        "stored": result.stored,
                        "scores": result.scores,
                        "enrolments": sorted(touched)[:200],
                    },
                )
        return result

    # --- storing -------------------------------------------------------------------------

    def _store(
        self,
        tx: Tx,
        keep: list[tuple[int, Prepared, str]],
        now: datetime,
        source: str,
        result: IngestResult,
    ) -> list[tuple[int, Prepared, str]]:
        """Insert the readings; returns those that were new (not resends)."""
        if not keep:
            return []
        s = tx.session
        rows: list[dict[str, Any]] = [
            {
                "key": p.raw.key(),
                "enrolment_id": e,
                "parameter": p.parameter,
                "value": p.value,
                "text_value": p.text_value,
                "at": p.at,
                "received_at": now,
                "source": source,
                "device": p.raw.device,
            }
            for _, p, e in keep
        ]
        # One copy per key even inside a batch (a gateway that repeats itself).
        first: dict[str, int] = {}
        for n, row in enumerate(rows):
            first.setdefault(row["key"], n)
        new_keys = bulk.insert_readings(s, [rows[n] for n in sorted(first.values())])
        result.stored_ids, result.received_at = new_keys, now
        stored: list[tuple[int, Prepared, str]] = []
        for n, (i, p, e) in enumerate(keep):
            key = rows[n]["key"]
            if key in new_keys and first[key] == n:
                stored.append((i, p, e))
                result.outcomes[i] = "stored"
            else:
                result.outcomes[i] = "duplicate"
        result.stored = len(stored)
        result.duplicates = len(keep) - len(stored)
        self._latest(s, stored)
        return stored

    def _latest(self, s: Session, stored: list[tuple[int, Prepared, str]]) -> None:
        newest: dict[tuple[str, str], Prepared] = {}
        for _, p, e in stored:
            k = (e, p.parameter)
            if k not in newest or p.at >= newest[k].at:
                newest[k] = p
        if not newest:
            return
        rows = [
            {
                "enrolment_id": e,
                "parameter": param,
                "value": p.value,
                "text_value": p.text_value,
                "at": p.at,
            }
            for (e, param), p in sorted(newest.items())
        ]
        bulk.upsert_latest(s, rows)

    def _devices(
        self,
        s: Session,
        ready: list[tuple[int, Prepared]],
        batteries: Sequence[Battery],
        now: datetime,
    ) -> None:
        seen: dict[str, datetime] = {}
        for _, p in ready:
            if p.raw.device:
                seen[p.raw.device] = max(seen.get(p.raw.device, p.at), p.at)
        for b in batteries:
            seen[b.device] = max(seen.get(b.device, b.at), b.at)
        if not seen:
            return
        bulk.mark_seen(s, [{"b_serial": k, "b_at": min(v, now)} for k, v in sorted(seen.items())])
        if batteries:
            bulk.set_batteries(
                s, [{"b_serial": b.device, "b_pct": b.pct, "b_at": b.at} for b in batteries]
            )

    @staticmethod
    def _keep_refused(
        s: Session,
        readings: Sequence[RawReading],
        refusals: Iterable[tuple[int, str]],
        rejected: Sequence[tuple[str, str, str]],
        source: str,
        now: datetime,
    ) -> None:
        rows = [
            {
                "received_at": now,
                "source": source,
                "sender": readings[i].sender[:120],
                "reason": reason[:500],
                "payload": str(readings[i].payload) or _describe(readings[i]),
            }
            for i, reason in refusals
        ]
        rows += [
            {
                "received_at": now,
                "source": source,
                "sender": sender[:120],
                "reason": reason[:500],
                "payload": payload,
            }
            for sender, reason, payload in rejected
        ]
        if rows:
            s.execute(insert(Rejected), rows)

    # --- scoring -------------------------------------------------------------------------

    def _score(
        self,
        tx: Tx,
        enrolments: Mapping[str, Enrolment],
        stored: list[tuple[int, Prepared, str]],
        now: datetime,
        result: IngestResult,
        actor: Actor,
    ) -> None:
        s = tx.session
        newest: dict[str, datetime] = {}
        late: dict[str, timedelta] = {}
        for _, p, e in stored:
            newest[e] = max(newest.get(e, p.at), p.at)
            late[e] = max(late.get(e, timedelta(0)), now - p.at)
        latest: dict[str, dict[str, Any]] = defaultdict(dict)
        for row in s.execute(
            select(
                Latest.enrolment_id, Latest.parameter, Latest.value, Latest.text_value, Latest.at
            ).where(one_of(s, Latest.enrolment_id, newest))
        ):
            latest[row.enrolment_id][row.parameter] = row
        scores: list[dict[str, Any]] = []
        plans: list[tuple[Enrolment, dict[str, Any], News2]] = []
        for e_id, set_at in sorted(newest.items()):
            enrolment = enrolments[e_id]
            current = latest[e_id]
            if enrolment.last_score_at is not None and set_at < enrolment.last_score_at:
                continue  # only late readings: stored, but the current score stands
            obs, used, absent = self._assemble(enrolment, current, set_at)
            news = score(obs, scale=2 if enrolment.scale == 2 else 1)
            oldest = min((current[k].at for k in used), default=set_at)
            used_values = {k: _value(current[k]) for k in used}
            detail: dict[str, Any] = {
                "parameters": news.parameters,
                "values": used_values,
                "missing": list(news.missing),
                "reasons": {**news.reasons, **absent},
                "response": news.response,
            }
            scores.append(
                {
                    "enrolment_id": e_id,
                    "patient_id": enrolment.patient_id,
                    "at": set_at,
                    "oldest_at": oldest,
                    "computed_at": now,
                    "scale": news.scale,
                    "total": news.total,
                    "partial_total": news.partial_total,
                    "partial": news.partial,
                    "risk": news.risk,
                    "detail": detail,
                }
            )
            plans.append((enrolment, used_values, news))
        if not scores:
            return
        ids = insert_scores(s, scores)
        result.scores = len(ids)
        updates = []
        for score_id, written, (enrolment, values, news) in zip(ids, scores, plans, strict=True):
            recent = push_total(enrolment.recent_totals, news.total)
            updates.append(
                {
                    "b_id": enrolment.id,
                    "b_score": score_id,
                    "b_at": written["at"],
                    "b_total": news.total,
                    "b_partial": news.partial_total,
                    "b_risk": news.risk,
                    "b_recent": recent,
                }
            )
            triggers = score_triggers(news, values, enrolment.thresholds, recent)
            if late.get(enrolment.id, timedelta(0)) > self.stale:
                minutes = int(late[enrolment.id].total_seconds() // 60)
                triggers.append(self.alerts.stale_trigger(f"readings arrived {minutes} min late"))
            self.alerts.raise_all(tx, enrolment, triggers, score_id, actor, result)
        bulk.update_enrolments(s, updates)
        self.alerts.readings_arrived(tx, [e for e, _, _ in plans], actor)

    def _assemble(
        self, enrolment: Enrolment, values: Mapping[str, Any], set_at: datetime
    ) -> tuple[ObservationSet, list[str], dict[str, str]]:
        """The observation set at ``set_at``: each parameter's newest value within the window
        (the plan's own, if a clinician set one)."""
        own = enrolment.plan.get("set_window_minutes")
        since = set_at - (timedelta(minutes=float(own)) if own else self.window)
        used: list[str] = []
        absent: dict[str, str] = {}
        got: dict[str, Any] = {}
        for name in SET_PARAMETERS:
            row = values.get(name)
            if row is None or row.at < since or row.at > set_at:
                continue
            if row.value is None and row.text_value is None:
                absent[name] = "the device reported no value (data absent)"
                continue
            used.append(name)
            got[name] = row.text_value if name == "consciousness" else row.value
        on_oxygen: bool | None
        if "oxygen_flow" in got or "oxygen_concentration" in got:
            on_oxygen = bool(got.get("oxygen_flow") or 0) or (
                float(got.get("oxygen_concentration") or 21) > 21
            )
        else:
            on_oxygen = enrolment.plan.get("oxygen", "air") == "oxygen"
        obs = ObservationSet(
            respiration_rate=got.get("respiration_rate"),
            spo2=got.get("spo2"),
            on_oxygen=on_oxygen,
            systolic_bp=got.get("systolic_bp"),
            pulse=got.get("pulse"),
            consciousness=got.get("consciousness"),
            temperature=got.get("temperature"),
        )
        return obs, used, absent


def enrolments_of(s: Session, batteries: Sequence[Battery]) -> dict[str, Enrolment]:
    """Device serial -> the enrolment it is linked to now (for battery alerts)."""
    serials = {b.device for b in batteries}
    rows = s.execute(
        select(Device.serial, Enrolment)
        .join(DeviceLink, DeviceLink.device_id == Device.id)
        .join(Enrolment, Enrolment.id == DeviceLink.enrolment_id)
        .where(Device.serial.in_(serials), DeviceLink.unlinked_at.is_(None))
    )
    return {serial: enrolment for serial, enrolment in rows}


def _value(row: Any) -> float | str | None:
    value: float | str | None = row.text_value if row.text_value is not None else row.value
    return value


def _describe(raw: RawReading) -> str:
    return json.dumps(
        {
            "code": raw.code,
            "value": raw.value,
            "unit": raw.unit,
            "at": raw.at.isoformat() if raw.at else None,
            "id": raw.id,
            "device": raw.device,
            "patient": raw.patient,
            "absent": raw.absent,
        }
    )
