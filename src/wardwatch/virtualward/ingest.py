"""Readings in: checked, attributed to the right patient, stored once, scored, alerted on.

Every door (MQTT, FHIR, HL7 ORU^R01, the REST API) calls :meth:`Ingestor.ingest` with a
batch. One batch is one transaction: when it returns, everything it accepted is durable, so
a door acknowledges only after it returns. A reading that cannot be used is refused with its
reason and kept in ``vw_rejected``; the rest of the batch is stored all the same.

Attribution is the safety-critical step (hazard HAZ-V02): a device's reading belongs to the
patient the device was linked to *at the reading's time*, never to whoever wears it now; a
reading from a device that was not linked then, or from an unknown device, is refused.

The batch path uses Core statements (multi-row inserts, upserts, one query per table) rather
than the ORM, so thousands of readings a second stay cheap; the ORM is used only for the
rare writes (alerts and their events).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Patient
from wardwatch.config import Settings
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.db.session import Database, Tx
from wardwatch.virtualward.alerting import AlertWriter
from wardwatch.virtualward.models import Device, DeviceLink, Enrolment, Latest, Reading, Rejected
from wardwatch.virtualward.news2 import News2, ObservationSet, score
from wardwatch.virtualward.readings import Prepared, RawReading, prepare
from wardwatch.virtualward.rules import push_total, score_triggers
from wardwatch.virtualward.scores import insert_scores
from wardwatch.virtualward.vitals import VitalsError

# PostgreSQL: each batch is one statement whatever its size, its rows passed as one JSON
# parameter and expanded by json_to_recordset(); compiled once, one round trip, and several
# times faster than multi-row VALUES or executemany. SQLite takes the executemany path.
READING_COLUMNS = (
    ("key", "text"),
    ("enrolment_id", "text"),
    ("parameter", "text"),
    ("value", "float8"),
    ("text_value", "text"),
    ("at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("source", "text"),
    ("device", "text"),
)
LATEST_COLUMNS = READING_COLUMNS[1:6]


def _unnest(table: str, columns: Sequence[tuple[str, str]]) -> str:
    """INSERT of a JSON array of rows: one text parameter, dumped by the C json encoder and
    read by PostgreSQL's C parser (array parameters are dumped element by element in Python)."""
    names = ", ".join(name for name, _ in columns)
    shape = ", ".join(f"{name} {kind}" for name, kind in columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({shape})"
    )


PG_READINGS = text(
    _unnest("vw_readings", READING_COLUMNS) + " ON CONFLICT (key) DO NOTHING RETURNING key"
)
PG_LATEST = text(
    _unnest("vw_latest", LATEST_COLUMNS)
    + " ON CONFLICT (enrolment_id, parameter) DO UPDATE SET value = excluded.value,"
    " text_value = excluded.text_value, at = excluded.at WHERE excluded.at >= vw_latest.at"
)


PG_ENROLMENTS = text(
    "UPDATE vw_enrolments AS e SET last_score_id = u.score, last_score_at = u.at,"
    " last_reading_at = u.at, last_total = u.total, last_partial_total = u.partial,"
    " last_risk = u.risk, recent_totals = u.recent"
    " FROM unnest(CAST(:b_id AS text[]), CAST(:b_score AS bigint[]),"
    " CAST(:b_at AS timestamptz[]), CAST(:b_total AS int[]), CAST(:b_partial AS int[]),"
    " CAST(:b_risk AS text[]), CAST(:b_recent AS json[]))"
    " AS u(id, score, at, total, partial, risk, recent) WHERE e.id = u.id"
)


def _enrolment_arrays(updates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    arrays: dict[str, Any] = {
        key: [u[key] for u in updates]
        for key in ("b_id", "b_score", "b_at", "b_total", "b_partial", "b_risk")
    }
    arrays["b_recent"] = [json.dumps(u["b_recent"]) for u in updates]
    return arrays


def _columns(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """``rows`` as the one JSON parameter of an :func:`_unnest` statement."""
    names = [name for name, _ in columns]
    return {"rows": json.dumps([{n: _plain(row[n]) for n in names} for row in rows])}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


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
            enrolments, owner_of = self._attribute(s, ready, refusals)
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

    # --- who each reading belongs to -----------------------------------------------------

    def _attribute(
        self,
        s: Session,
        ready: list[tuple[int, Prepared]],
        refusals: list[tuple[int, str]],
    ) -> tuple[dict[str, Enrolment], dict[int, str]]:
        serials = {p.raw.device for _, p in ready if p.raw.device}
        devices: dict[str, str] = {}
        if serials:
            query = select(Device.serial, Device.id).where(Device.serial.in_(serials))
            devices = {serial: d for serial, d in s.execute(query)}
        links: dict[str, list[Any]] = defaultdict(list)
        if devices:
            by_id = {d: serial for serial, d in devices.items()}
            for link in s.execute(
                select(
                    DeviceLink.device_id,
                    DeviceLink.enrolment_id,
                    DeviceLink.linked_at,
                    DeviceLink.unlinked_at,
                ).where(DeviceLink.device_id.in_(by_id))
            ):
                links[by_id[link.device_id]].append(link)
        patient_ids = self._patients(s, {p.raw.patient for _, p in ready if p.raw.patient})
        wanted_enrolments = {link.enrolment_id for ls in links.values() for link in ls}
        locked = select(Enrolment).order_by(Enrolment.id)
        conditions = []
        if wanted_enrolments:
            conditions.append(Enrolment.id.in_(wanted_enrolments))
        if patient_ids:
            conditions.append(Enrolment.patient_id.in_(set(patient_ids.values())))
        enrolments: dict[str, Enrolment] = {}
        if conditions:
            # Locked in id order: two batches for one patient score one after the other.
            for e in s.scalars(locked.where(or_(*conditions)).with_for_update()):
                enrolments[e.id] = e
        by_patient: dict[str, list[Enrolment]] = defaultdict(list)
        for e in enrolments.values():
            by_patient[e.patient_id].append(e)
        owner_of: dict[int, str] = {}
        for i, p in ready:
            why, owner = self._owner(p, devices, links, patient_ids, by_patient, enrolments)
            if owner is None:
                refusals.append((i, why))
            else:
                owner_of[i] = owner
        return enrolments, owner_of

    @staticmethod
    def _patients(s: Session, refs: set[str]) -> dict[str, str]:
        """``nhs:...`` / ``local:...`` -> patient id, for those we know."""
        nhs = {r.split(":", 1)[1].replace(" ", ""): r for r in refs if r.startswith("nhs:")}
        local = {r.split(":", 1)[1]: r for r in refs if r.startswith("local:")}
        found: dict[str, str] = {}
        if nhs:
            for pid, number in s.execute(
                select(Patient.id, Patient.nhs_number).where(Patient.nhs_number.in_(nhs))
            ):
                found[nhs[str(number)]] = pid
        if local:
            for pid, lid in s.execute(
                select(Patient.id, Patient.local_id).where(Patient.local_id.in_(local))
            ):
                found[local[str(lid)]] = pid
        return found

    @staticmethod
    def _owner(
        p: Prepared,
        devices: Mapping[str, str],
        links: Mapping[str, list[Any]],
        patient_ids: Mapping[str, str],
        by_patient: Mapping[str, list[Enrolment]],
        enrolments: Mapping[str, Enrolment],
    ) -> tuple[str, str | None]:
        at = p.at
        stamp = at.isoformat()
        enrolment: Enrolment | None = None
        if p.raw.device:
            if p.raw.device not in devices:
                return f"unknown device {p.raw.device!r}: register it first", None
            link = next(
                (
                    k
                    for k in links.get(p.raw.device, ())
                    if k.linked_at <= at and (k.unlinked_at is None or at < k.unlinked_at)
                ),
                None,
            )
            if link is None:
                return (
                    f"device {p.raw.device} was not linked to a patient at {stamp}: the "
                    "reading cannot be attributed to anyone",
                    None,
                )
            enrolment = enrolments.get(link.enrolment_id)
            if enrolment is None:  # pragma: no cover - the link's enrolment is always loaded
                return f"device {p.raw.device} is linked to an unknown enrolment", None
            if p.raw.patient:
                pid = patient_ids.get(p.raw.patient)
                if pid != enrolment.patient_id:
                    return (
                        f"device {p.raw.device} is linked to another patient than "
                        f"{p.raw.patient}: refused rather than filed against the wrong one",
                        None,
                    )
        else:
            ref = p.raw.patient or ""
            pid = patient_ids.get(ref)
            if pid is None:
                return f"no patient {ref} is known", None
            enrolment = next(
                (
                    e
                    for e in by_patient.get(pid, ())
                    if e.enrolled_at <= at and (e.ended_at is None or at <= e.ended_at)
                ),
                None,
            )
            if enrolment is None:
                return f"patient {ref} was not on a virtual ward at {stamp}", None
        if at < enrolment.enrolled_at:
            return f"reading at {stamp} is from before the patient was enrolled", None
        if enrolment.ended_at is not None and at > enrolment.ended_at:
            return f"reading at {stamp} is from after the patient left the virtual ward", None
        return "", enrolment.id

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
        new_keys: set[str] = set()
        unique_rows = [rows[n] for n in sorted(first.values())]
        if _postgres(s):
            new_keys.update(s.scalars(PG_READINGS, _columns(unique_rows, READING_COLUMNS)))
        else:
            insert_new = (
                sqlite.insert(Reading)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(Reading.key)
            )
            new_keys.update(s.scalars(insert_new, unique_rows))
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
        if _postgres(s):
            s.execute(PG_LATEST, _columns(rows, LATEST_COLUMNS))
            return
        stmt = sqlite.insert(Latest)
        stmt = stmt.on_conflict_do_update(
            index_elements=["enrolment_id", "parameter"],
            set_={
                "value": stmt.excluded.value,
                "text_value": stmt.excluded.text_value,
                "at": stmt.excluded.at,
            },
            where=stmt.excluded.at >= Latest.at,
        )
        s.execute(stmt, rows)

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
        devices = table(Device)
        s.connection().execute(
            update(devices)
            .where(devices.c.serial == bindparam("b_serial"))
            .where(devices.c.last_seen_at.is_(None) | (devices.c.last_seen_at < bindparam("b_at")))
            .values(last_seen_at=bindparam("b_at")),
            [{"b_serial": k, "b_at": min(v, now)} for k, v in sorted(seen.items())],
        )
        if batteries:
            s.connection().execute(
                update(devices)
                .where(devices.c.serial == bindparam("b_serial"))
                .where(devices.c.battery_at.is_(None) | (devices.c.battery_at <= bindparam("b_at")))
                .values(battery_pct=bindparam("b_pct"), battery_at=bindparam("b_at")),
                [{"b_serial": b.device, "b_pct": b.pct, "b_at": b.at} for b in batteries],
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
                "payload": readings[i].payload or _describe(readings[i]),
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
            ).where(Latest.enrolment_id.in_(newest))
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
        if _postgres(s):
            s.execute(PG_ENROLMENTS, _enrolment_arrays(updates))
        else:
            self._update_enrolments(s, updates)
        self.alerts.readings_arrived(tx, [e for e, _, _ in plans], actor)

    @staticmethod
    def _update_enrolments(s: Session, updates: list[dict[str, Any]]) -> None:
        enrolments_t = table(Enrolment)
        s.connection().execute(
            update(enrolments_t)
            .where(enrolments_t.c.id == bindparam("b_id"))
            .values(
                last_score_id=bindparam("b_score"),
                last_score_at=bindparam("b_at"),
                last_reading_at=bindparam("b_at"),
                last_total=bindparam("b_total"),
                last_partial_total=bindparam("b_partial"),
                last_risk=bindparam("b_risk"),
                recent_totals=bindparam("b_recent", type_=enrolments_t.c.recent_totals.type),
            ),
            updates,
        )

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


def table(model: Any) -> Table:
    """The Core table of an ORM class (for executemany updates by a non-key column)."""
    return cast(Table, model.__table__)


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
