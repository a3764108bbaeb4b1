"""HL7 v2 ORU^R01 observation results in, as virtual-ward readings.

Monitors, device gateways and clinical systems send vital signs as ORU^R01: PID names the
patient, each OBR an observation request, each OBX one observation. Every OBX becomes one
:class:`~wardwatch.virtualward.readings.RawReading`, and the whole message goes to the
virtual-ward ingestor in **one** call, so in one transaction; the ACK is built from what it
stored, after it returned (stored readings are durable by then).

Each OBX ends up stored, already stored (a resend), or refused with a reason. A refused OBX
never stops the others: the valid ones are stored, the bad ones kept in ``vw_rejected``
with their reason and listed in the ACK, one ERR segment each. The ACK is therefore:

- ``AA`` when every OBX was stored or was already stored;
- ``AE`` when some OBX were refused (HL7 v2.5: the message was processed, with errors).
  If others were stored the message is logged ``accepted`` (a resend is answered ``AE``
  again and stores nothing twice); if nothing was stored it waits in the quarantine queue,
  to be replayed once the cause is fixed (a patient's identifiers corrected, a device link
  back-dated) or discarded.

The readings are stored in the ingestor's own transaction and the message row written just
after it, in a second one. If the process dies between the two, no ACK was sent: the sender
resends, the readings' keys make the second copy a duplicate, and the row is written then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import hl7
from pydantic import ValidationError

from wardwatch.capacity.lookups import find_patient
from wardwatch.capacity.nhs import nhs_number_problem, normalise_nhs_number
from wardwatch.capacity.schemas import PatientIn
from wardwatch.core.actor import Actor
from wardwatch.core.errors import Conflict
from wardwatch.db.session import Database
from wardwatch.ingest.hl7v2.ack import AckError
from wardwatch.ingest.hl7v2.parse import Hl7Error, Parsed, parse_ts, pid_identifiers
from wardwatch.virtualward.ingest import Ingestor, IngestResult
from wardwatch.virtualward.readings import NAMES, RawReading, parameter_of
from wardwatch.virtualward.vitals import VitalsError

#: OBX-11 (table 0085) statuses that carry a usable result: final, corrected, not verified,
#: preliminary. An empty OBX-11 is read as final (it is required, but not always sent).
RESULT_STATUSES = frozenset({"F", "C", "R", "P", ""})
#: OBX-11 "X": results cannot be obtained for this observation -> a reading with no value.
NO_RESULT = "X"
#: The FHIR dataAbsentReason recorded for OBX-11 "X".
NO_RESULT_REASON = "not-performed"
#: OBX-11 statuses that ask the receiver to take a result back; readings are never removed
#: automatically (a score may already have been acted on), so they are refused and reported.
TAKE_BACK = {
    "D": "OBX-11 D asks to delete a result: WardWatch never removes stored readings "
    "automatically; ask the virtual-ward team to review this patient's readings",
    "W": "OBX-11 W says a result was wrong (e.g. sent for the wrong patient): WardWatch "
    "never removes stored readings automatically; ask the virtual-ward team to review "
    "this patient's readings",
}
NUMERIC = "NM"
TEXTUAL = frozenset({"ST", "CE", "CWE"})
#: Longest reading id used as it is; longer ones are digested. The key is sender + id in 200
#: characters, and a device serial may take 80 of them.
MAX_ID = 100


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an ORU: the message status, the ACK code, and one error per OBX."""

    status: str  # accepted | ignored | quarantined
    ack: str  # AA | AE
    detail: str
    errors: list[AckError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Refused:
    """An OBX refused here, before the ingestor saw it."""

    code: str  # HL7 table 0357
    location: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Patient:
    """What a PID says: the reference for readings, or why it cannot be used."""

    ref: str | None  # nhs:<n> / local:<id>: as on record when found, else as sent
    problem: _Refused | None = None


@dataclass(slots=True)
class _Obx:
    occurrence: int  # the OBX's position among the message's OBX segments (ERR-2)
    sender: str
    payload: str
    reading: RawReading | None = None
    refused: _Refused | None = None


@dataclass
class _Reader:
    msg: Parsed
    tz: ZoneInfo
    find: Callable[[PatientIn], str | None]
    _pids: dict[int, _Patient] = field(default_factory=dict)

    # --- the message, segment by segment ------------------------------------------------

    def observations(self) -> list[_Obx]:
        """Every OBX with the PID and OBR it belongs to (repeated groups in order)."""
        counts: dict[str, int] = {}
        pid = obr = 0
        out: list[_Obx] = []
        msh = str(self.msg.message.segment("MSH"))
        for segment in self.msg.message:
            name = str(segment[0])
            counts[name] = counts.get(name, 0) + 1
            if name == "PID":
                pid = counts[name]
            elif name == "OBR":
                obr = counts[name]
            elif name == "OBX":
                out.append(self._obx(counts[name], pid, obr, msh, segment))
        return out

    def _obx(self, n: int, pid: int, obr: int, msh: str, segment: hl7.Segment) -> _Obx:
        device = self.get(n, 18) or None
        patient = self.patient(pid) if pid else None
        ref = patient.ref if patient else None
        sender = f"device:{device}" if device else (f"patient:{ref}" if ref else "unknown sender")
        obx = _Obx(occurrence=n, sender=sender, payload=f"{msh}\r{segment}")
        try:
            obx.reading = self._reading(n, obr, device, patient, obx.payload)
        except _RefusedError as exc:
            obx.refused = exc.refused
        return obx

    def get(self, n: int, position: int, component: int = 1) -> str:
        return self.msg.get("OBX", position, component, occurrence=n).strip()

    # --- one OBX ------------------------------------------------------------------------

    def _reading(
        self,
        n: int,
        obr: int,
        device: str | None,
        patient: _Patient | None,
        payload: str,
    ) -> RawReading:
        where = f"OBX^{n}"
        status = self.get(n, 11).upper()
        if status in TAKE_BACK:
            raise _RefusedError("207", f"{where}^11", TAKE_BACK[status])
        if status not in RESULT_STATUSES and status != NO_RESULT:
            raise _RefusedError(
                "103",
                f"{where}^11",
                f"OBX-11 {status!r} carries no result WardWatch can use (accepted: F, C, R, "
                "P; X for a result that cannot be obtained; D and W are refused)",
            )
        # An unknown patient's reading may still come from a linked device (the ingestor
        # then refuses it unless the link is to this very patient); a PID that cannot be
        # read at all stops every reading under it.
        problem = patient.problem if patient is not None else None
        if problem is not None and (device is None or patient is None or patient.ref is None):
            raise _RefusedError(problem.code, problem.location, problem.reason)
        if device is None and (patient is None or patient.ref is None):
            raise _RefusedError(
                "101",
                f"{where}^18",
                "no patient (PID-3) and no device (OBX-18): the observation cannot be "
                "attributed to anyone",
            )
        code = self._code(n)
        absent = NO_RESULT_REASON if status == NO_RESULT else None
        value = None if absent and not self.get(n, 5) else self._value(n, code)
        return RawReading(
            code=code,
            value=value,
            unit=self._unit(n),
            at=self._time(n, obr),
            id=self._id(n, obr, status),
            device=device,
            patient=patient.ref if patient else None,
            absent=absent,
            payload=payload,
        )

    def _code(self, n: int) -> str:
        """OBX-3: the LOINC code (coding system LN, or the alternate LN triplet), or one of
        our parameter names; anything else is refused here with the code it carried."""
        code, system = self.get(n, 3, 1), self.get(n, 3, 3).upper()
        alternate, alt_system = self.get(n, 3, 4), self.get(n, 3, 6).upper()
        chosen = code
        if code not in NAMES and system not in ("LN", ""):
            if alt_system != "LN" or not alternate:
                raise _RefusedError(
                    "103",
                    f"OBX^{n}^3",
                    f"OBX-3 {code!r} is coded in {system!r}, not LOINC: send the LOINC code "
                    "with coding system LN (or as the alternate code, OBX-3.4 to 3.6)",
                )
            chosen = alternate
        if not chosen:
            raise _RefusedError("101", f"OBX^{n}^3", "OBX-3 (observation identifier) is empty")
        try:
            parameter_of(chosen)
        except VitalsError as exc:
            raise _RefusedError("103", f"OBX^{n}^3", f"OBX-3: {exc}") from None
        return chosen

    def _value(self, n: int, code: str) -> float | str | None:
        """OBX-5 read by OBX-2: NM for measurements, ST/CE/CWE for the ACVPU letter."""
        kind = self.get(n, 2).upper()
        where = f"OBX^{n}^5"
        if not kind:
            raise _RefusedError("101", f"OBX^{n}^2", "OBX-2 (value type) is empty")
        if kind != NUMERIC and kind not in TEXTUAL:
            raise _RefusedError(
                "102",
                f"OBX^{n}^2",
                f"OBX-2 {kind!r} is not read (NM for measurements; ST, CE or CWE for the "
                "ACVPU letter)",
            )
        value = self.get(n, 5)
        if parameter_of(code) == "consciousness":
            if kind == NUMERIC:
                raise _RefusedError(
                    "102",
                    f"OBX^{n}^2",
                    "consciousness is a letter (A, C, V, P or U): send it as ST, CE or CWE",
                )
            return value or None
        if kind in ("CE", "CWE"):
            raise _RefusedError(
                "102", f"OBX^{n}^2", f"OBX-2 {kind} for a measurement: send it as NM"
            )
        if not value:
            return None  # the ingestor says which reading came without a value
        try:
            return float(value)
        except ValueError:
            raise _RefusedError(
                "102", where, f"OBX-5 {value!r} is not a number (OBX-2 {kind})"
            ) from None

    def _unit(self, n: int) -> str | None:
        """OBX-6 identifier (UCUM), or its alternate when only that one is UCUM."""
        unit = self.get(n, 6, 1)
        if self.get(n, 6, 3).upper() != "UCUM" and self.get(n, 6, 6).upper() == "UCUM":
            unit = self.get(n, 6, 4) or unit
        return unit or None

    def _time(self, n: int, obr: int) -> datetime | None:
        """OBX-14, else the OBR's observation time (OBR-7), else the message time (MSH-7)."""
        candidates = [("OBX", n, 14)] + ([("OBR", obr, 7)] if obr else []) + [("MSH", 1, 7)]
        for segment, occurrence, position in candidates:
            value = self.msg.get(segment, position, occurrence=occurrence).strip()
            if not value:
                continue
            name = f"{segment}-{position}"
            try:
                return parse_ts(value, name, self.tz)
            except Hl7Error as exc:
                raise _RefusedError("102", f"{segment}^{occurrence}^{position}", exc.text) from None
        return None  # the ingestor refuses a reading without a time

    def _id(self, n: int, obr: int, status: str) -> str:
        """The reading's id, the same in every copy of the message.

        OBX-21 (observation instance identifier) when the sender gives one; else MSH-3,
        MSH-4, MSH-10, the OBR group and OBX-1 (set ids restart in each OBR group, and two
        feeds may number their messages alike). A corrected result (OBX-11 C) sent under
        the same OBX-21 is a new reading: the correction, not a resend.
        """
        instance = self.get(n, 21, 1)
        if instance:
            namespace = self.get(n, 21, 2)
            ident = f"obx21:{namespace}:{instance}" if namespace else f"obx21:{instance}"
            if status == "C":
                ident += f":C:{self.msg.control_id}"
        else:
            set_id = self.get(n, 1) or f"#{n}"
            g = self.msg.get
            ident = f"hl7:{g('MSH', 3)}:{g('MSH', 4)}:{self.msg.control_id}:{obr}.{set_id}"
        if len(ident) > MAX_ID:
            ident = "hl7:sha256:" + hashlib.sha256(ident.encode()).hexdigest()[:40]
        return ident

    # --- the patient --------------------------------------------------------------------

    def patient(self, occurrence: int) -> _Patient:
        cached = self._pids.get(occurrence)
        if cached is None:
            cached = self._pids[occurrence] = self._read_patient(occurrence)
        return cached

    def _read_patient(self, occurrence: int) -> _Patient:
        """The patient PID-3 names, read as the ADT feed reads it (``pid_identifiers``)."""
        where = f"PID^{occurrence}^3"
        nhs, local = pid_identifiers(self.msg, occurrence)
        if nhs is not None:
            problem = nhs_number_problem(nhs)
            if problem:
                return _Patient(None, _Refused("102", where, f"PID-3: NHS number {problem}"))
            nhs = normalise_nhs_number(nhs)
        if not nhs and not local:
            return _Patient(None, _Refused("101", where, "PID-3 carries no identifier"))
        try:
            found = self.find(PatientIn(nhs_number=nhs, local_id=local))
        except ValidationError as exc:
            first = exc.errors()[0]
            return _Patient(None, _Refused("102", where, f"PID-3: {first['msg']}"))
        except Conflict as exc:
            return _Patient(None, _Refused("204", where, f"PID-3: {exc.message}"))
        if found is not None:
            return _Patient(found)
        given = f"nhs:{nhs}" if nhs else f"local:{local}"
        unknown = _Refused(
            "204",
            where,
            "unknown patient: no patient with this PID-3 identifier is known (enrol them on "
            "a virtual ward, or correct their identifiers, then replay)",
        )
        # With a device in OBX-18 the device link decides and the ingestor checks that the
        # PID agrees; without one the reading cannot be attributed.
        return _Patient(given, unknown)


class _RefusedError(Exception):
    def __init__(self, code: str, location: str, reason: str) -> None:
        super().__init__(reason)
        self.refused = _Refused(code, location, reason)


def _finder(db: Database) -> Callable[[PatientIn], str | None]:
    """Look a patient up; the reference uses the identifier they are on record with."""

    def find(p: PatientIn) -> str | None:
        with db.read() as s:
            patient = find_patient(s, p)
            if patient is None:
                return None
            if patient.nhs_number:
                return f"nhs:{patient.nhs_number}"
            return f"local:{patient.local_id}"

    return find


def receive(msg: Parsed, *, tz: ZoneInfo, db: Database, ingest: Ingestor, actor: Actor) -> Outcome:
    """Store an ORU^R01's observations (one ingestor call) and say what to acknowledge.

    Raises :class:`Hl7Error` only for a message that cannot be read as ORU^R01 at all.
    """
    if msg.trigger != "R01":
        raise Hl7Error(
            f"ORU event {msg.trigger or '(none)'} is not supported (ORU^R01 only)",
            ack="AR",
            code="201",
            location="MSH^1^9",
        )
    observations = _Reader(msg, tz, _finder(db)).observations()
    if not observations:
        return Outcome("ignored", "AA", "no OBX segment: no observation to store")
    readings = [o.reading for o in observations if o.reading is not None]
    rejected = [(o.sender, o.refused.reason, o.payload) for o in observations if o.refused]
    result = ingest.ingest(readings, source="hl7", actor=actor, rejected=rejected)
    return _outcome(observations, result)


def _outcome(observations: list[_Obx], result: IngestResult) -> Outcome:
    reasons = {r.index: r.reason for r in result.refused}
    errors: list[AckError] = []
    stored = duplicates = 0
    index = 0
    for obx in observations:
        if obx.refused is not None:
            errors.append(AckError(obx.refused.code, obx.refused.location, obx.refused.reason))
            continue
        outcome = result.outcomes[index]
        if outcome == "stored":
            stored += 1
        elif outcome == "duplicate":
            duplicates += 1
        else:
            errors.append(AckError("207", f"OBX^{obx.occurrence}", reasons[index]))
        index += 1
    total = len(observations)
    counts = f"{stored} of {total} observations stored"
    if duplicates:
        counts += f", {duplicates} already stored"
    if not errors:
        status = "accepted" if stored else "ignored"
        return Outcome(status, "AA", counts)
    listed = "; ".join(f"{_where(e.location)}: {e.text}" for e in errors)
    detail = f"{counts}, {len(errors)} refused: {listed}"
    status = "accepted" if stored or duplicates else "quarantined"
    return Outcome(status, "AE", detail, errors)


def _where(location: str) -> str:
    """``OBX^3^11`` as people write it in a log line: ``OBX 3 field 11``."""
    segment, _, rest = location.partition("^")
    occurrence, _, position = rest.partition("^")
    return f"{segment} {occurrence}" + (f" field {position}" if position else "")
