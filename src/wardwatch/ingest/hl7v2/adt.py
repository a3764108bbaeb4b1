"""Applying ADT events to the bed board, inside the caller's transaction.

Each trigger event maps to moves of :class:`~wardwatch.capacity.moves.BedMoves`. A message
whose event time is older than the latest event already applied for the same patient is not
applied (it is acknowledged and kept as ``ignored``): a late A02 can never move a patient
who has since moved again or gone home. Cancellations (A11, A12, A13) undo exactly the move
they cancel and are refused when the board has moved on (the bed was taken).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select

from wardwatch.capacity import pending
from wardwatch.capacity.lookups import (
    find_or_create_patient,
    find_patient,
    know_open_stays,
    know_patients,
    lock_bed,
    lock_beds,
    open_stay_of,
    validated_patient,
)
from wardwatch.capacity.models import Patient, Stay
from wardwatch.capacity.moves import BedMoves
from wardwatch.capacity.nhs import nhs_number_problem
from wardwatch.capacity.schemas import PatientIn
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import Actor
from wardwatch.core.errors import Conflict
from wardwatch.db.filters import one_of
from wardwatch.db.session import Tx, absent, none_when_made, now_present
from wardwatch.ingest.hl7v2.locations import Locations, Place
from wardwatch.ingest.hl7v2.models import Hl7PatientClock
from wardwatch.ingest.hl7v2.parse import Hl7Error, Parsed, parse_ts, pid_identifiers

SEX = {"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}
#: HL7 table 0116 bed status → our state (and the reason shown on the board).
NPU_STATES: dict[str, tuple[BedState, str | None]] = {
    "C": (BedState.CLOSED, "closed (PAS)"),
    "H": (BedState.AWAITING_CLEAN, None),
    "I": (BedState.BLOCKED, "isolated (PAS)"),
    "K": (BedState.BLOCKED, "contaminated (PAS)"),
    "U": (BedState.AVAILABLE, None),
}
#: ``Session.info`` key: the patients' HL7 clocks this transaction has read, by patient id
#: (None: the patient has none yet). Held here: the session only holds them weakly.
CLOCKS = "wardwatch.hl7_clocks"
#: Look-ahead kind (``db.session.absent``): patients with no HL7 clock (made here).
NO_CLOCK = "hl7_clock_patient"
none_when_made("patient", NO_CLOCK)
PATIENT_EVENTS_NEEDING_ORDER = {
    "A01",
    "A02",
    "A03",
    "A04",
    "A05",
    "A08",
    "A14",
    "A15",
    "A16",
    "A17",
    "A21",
    "A22",
}


@dataclass
class Outcome:
    status: str  # accepted | ignored
    detail: str


@dataclass
class Adt:
    tx: Tx
    moves: BedMoves
    msg: Parsed
    tz: ZoneInfo
    actor: Actor
    message_id: str
    locations: Locations
    _patients: dict[int, PatientIn] = field(default_factory=dict)
    #: The patients looked up so far (None: not known), by PID occurrence. Only a message's
    #: own handler creates a patient, after the look-ups: an admission (A01) creates through
    #: ``find_or_create_patient`` and never reads this.
    _found: dict[int, Patient | None] = field(default_factory=dict)

    # --- fields -----------------------------------------------------------------------

    @property
    def trigger(self) -> str:
        return self.msg.trigger

    def event_time(self) -> datetime | None:
        return event_time(self.msg, self.tz)

    def patient_in(self, occurrence: int = 1) -> PatientIn:
        """The patient a PID segment names (read once per message and occurrence)."""
        cached = self._patients.get(occurrence)
        if cached is None:
            cached = self._patients[occurrence] = self._read_patient(occurrence)
        return cached

    def _read_patient(self, occurrence: int) -> PatientIn:
        if not self.msg.segments("PID")[occurrence - 1 : occurrence]:
            raise Hl7Error("the message has no PID segment", code="100", location="PID")
        nhs, local = pid_identifiers(self.msg, occurrence)
        if nhs is not None:
            problem = nhs_number_problem(nhs)
            if problem:
                raise Hl7Error(f"PID-3: NHS number {problem}", code="102", location="PID^1^3")
        if not nhs and not local:
            raise Hl7Error("PID-3 carries no patient identifier", code="101", location="PID^1^3")
        sex = SEX.get(self.msg.get("PID", 8, occurrence=occurrence).upper())
        try:
            return validated_patient(PatientIn(nhs_number=nhs, local_id=local, sex=sex))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Hl7Error(
                f"PID-3: {where}: {first['msg']}", code="102", location="PID^1^3"
            ) from exc

    def place(self, field: int, occurrence: int = 1) -> Place | None:
        g = self.msg.get
        return self.locations.resolve(
            self.tx.session,
            g("PV1", field, 1, occurrence=occurrence),
            g("PV1", field, 2, occurrence=occurrence),
            g("PV1", field, 3, occurrence=occurrence),
            g("PV1", field, 4, occurrence=occurrence),
            field=f"PV1-{field}",
            location=f"PV1^{occurrence}^{field}",
        )

    def bed_place(self, field: int = 3, occurrence: int = 1) -> tuple[str, str]:
        """(bed id, bed code) of the bed a PV1 field names; an error if it names none."""
        place = self.place(field, occurrence)
        if place is None or place.bed_id is None or place.bed_code is None:
            raise Hl7Error(
                f"PV1-{field} names no bed (a bed is needed for {self.trigger})",
                code="101",
                location=f"PV1^{occurrence}^{field}",
            )
        return place.bed_id, place.bed_code

    def visit(self, occurrence: int = 1) -> str | None:
        return self.short("PV1", 19, 40, occurrence=occurrence) or None

    def short(self, segment: str, position: int, limit: int, *, occurrence: int = 1) -> str:
        """A field that must fit what we keep of it (else a clear data type error)."""
        value = self.msg.get(segment, position, occurrence=occurrence)
        if len(value) > limit:
            raise Hl7Error(
                f"{segment}-{position} is longer than {limit} characters",
                code="102",
                location=f"{segment}^{occurrence}^{position}",
            )
        return value

    # --- patients and stays -------------------------------------------------------------

    def find(self, occurrence: int = 1) -> Patient | None:
        """The patient a PID segment names, if known (looked up once per message)."""
        if occurrence not in self._found:
            self._found[occurrence] = find_patient(self.tx.session, self.patient_in(occurrence))
        return self._found[occurrence]

    def known_patient(self, occurrence: int = 1) -> Patient:
        patient = self.find(occurrence)
        if patient is None:
            raise Hl7Error(
                "unknown patient: no admission was received for them",
                code="204",
                location="PID^1^3",
            )
        return patient

    def open_stay(self, patient: Patient, occurrence: int = 1) -> Stay:
        stay = open_stay_of(self.tx.session, patient)
        if stay is None:
            raise Hl7Error(
                "the patient has no open stay (not admitted, or already discharged)",
                code="204",
                location="PID^1^3",
            )
        visit = self.visit(occurrence)
        if visit and stay.visit_number and visit != stay.visit_number:
            raise Hl7Error(
                f"PV1-19 visit {visit!r} does not match the open stay's visit "
                f"{stay.visit_number!r}",
                code="204",
                location="PV1^1^19",
            )
        return stay

    def last_stay(self, patient: Patient) -> Stay:
        stay = self.tx.session.scalars(
            select(Stay)
            .where(Stay.patient_id == patient.id)
            .order_by(Stay.admitted_at.desc())
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if stay is None:
            raise Hl7Error("the patient has no stay to cancel", code="204", location="PID^1^3")
        return stay

    def named(self) -> tuple[list[PatientIn], list[str]]:
        """The patients and beds this message names (those that can be read), for a batch
        to look up before it applies its messages (:func:`look_ahead`)."""
        people = []
        for occurrence in range(1, len(self.msg.segments("PID")) + 1):
            with suppress(Hl7Error):  # the handler will say why
                people.append(self.patient_in(occurrence))
        spots = [(3, n) for n in range(1, len(self.msg.segments("PV1")) + 1)] + [(42, 1)]
        beds = []
        for position, occurrence in spots:
            try:
                place = self.place(position, occurrence)
            except Hl7Error:
                continue
            if place is not None and place.bed_id is not None:
                beds.append(place.bed_id)
        if self.msg.has("NPU"):
            try:
                npu = self.npu_place()
            except Hl7Error:
                npu = None
            if npu is not None and npu.bed_id is not None:
                beds.append(npu.bed_id)
        return people, beds

    def npu_place(self) -> Place | None:
        """The place NPU-1 (A20) names."""
        g = self.msg.get
        return self.locations.resolve(
            self.tx.session,
            g("NPU", 1, 1),
            g("NPU", 1, 2),
            g("NPU", 1, 3),
            g("NPU", 1, 4),
            field="NPU-1",
            location="NPU^1^1",
        )

    def _clock(self, patient_id: str) -> Hl7PatientClock | None:
        known: dict[str, Hl7PatientClock | None] | None = self.tx.session.info.get(CLOCKS)
        if known is not None and patient_id in known:
            return known[patient_id]  # read by look_ahead
        if patient_id in absent(self.tx.session, NO_CLOCK):
            return None  # a patient made in this transaction
        clock = self.tx.session.get(Hl7PatientClock, patient_id)
        # Held for the transaction: the identity map keeps a row only while something else
        # does, and the message asks again when it advances the clock.
        self.tx.session.info.setdefault(CLOCKS, {})[patient_id] = clock
        return clock

    def superseded(self, patient: Patient, at: datetime | None) -> datetime | None:
        """The later event already applied for this patient, if this one is older."""
        if at is None:
            return None
        clock = self._clock(patient.id)
        # In the hour the clocks go back a local time names two instants: take the later,
        # so that a real later event is never dropped as stale.
        latest = at.replace(fold=1)
        return clock.last_event_at if clock and latest < clock.last_event_at else None

    def advance(self, patient: Patient, at: datetime | None) -> None:
        """Remember the latest bed move applied for this patient (never beyond now: a sender
        whose clock runs fast must not lock out its own later messages)."""
        if at is None:
            return
        at = min(at, self.moves.clock.now())
        clock = self._clock(patient.id)
        if clock is None:
            clock = Hl7PatientClock(
                patient_id=patient.id, last_event_at=at, last_message_id=self.message_id
            )
            self.tx.session.add(clock)
            now_present(self.tx.session, NO_CLOCK, patient.id)
            self.tx.session.info.setdefault(CLOCKS, {})[patient.id] = clock
        elif at >= clock.last_event_at:
            clock.last_event_at = at
            clock.last_message_id = self.message_id


def look_ahead(tx: Tx, messages: list[Adt]) -> tuple[frozenset[str], frozenset[str]]:
    """Before a batch is applied: its patients, their clocks and every bed its messages name
    or its patients lie in, each read (the beds locked, in id order) in one statement, and
    remembered for the transaction (see :mod:`wardwatch.capacity.lookups`) with their open
    stays (locked), and which of them have no pending move. Only fewer statements: every
    handler still checks everything as if nothing had been read. The patients found and the
    beds locked."""
    s = tx.session
    people: list[PatientIn] = []
    beds: set[str] = set()
    for adt in messages:
        named_people, named_beds = adt.named()
        people += named_people
        beds.update(named_beds)
    ids = [p.id for p in know_patients(s, people)]
    patients = frozenset(ids)
    if ids:
        beds.update(stay.bed_id for stay in know_open_stays(s, ids))
        known = s.info.setdefault(CLOCKS, {})
        known.update(dict.fromkeys(ids))
        query = select(Hl7PatientClock).where(one_of(s, Hl7PatientClock.patient_id, ids))
        known.update((clock.patient_id, clock) for clock in s.scalars(query))
    lock_beds(s, beds)
    locked = frozenset(beds)
    pending.look_ahead(tx, patients, locked)
    return patients, locked


def event_time(msg: Parsed, tz: ZoneInfo) -> datetime | None:
    """When the event happened: EVN-6, else EVN-2 (recorded), else MSH-7."""
    for seg, position in (("EVN", 6), ("EVN", 2), ("MSH", 7)):
        value = parse_ts(msg.get(seg, position), f"{seg}-{position}", tz)
        if value is not None:
            return value
    return None


def apply(adt: Adt) -> Outcome:
    handler = HANDLERS.get(adt.trigger)
    if handler is None:
        supported = ", ".join(sorted(HANDLERS))
        raise Hl7Error(
            f"ADT event {adt.trigger or '(none)'} is not supported (supported: {supported})",
            ack="AR",
            code="201",
            location="MSH^1^9",
        )
    at = adt.event_time()
    if adt.trigger in PATIENT_EVENTS_NEEDING_ORDER:
        occurrences = (1, 2) if adt.trigger == "A17" else (1,)
        for occurrence in occurrences:
            patient = adt.find(occurrence)
            later = adt.superseded(patient, at) if patient else None
            if later is not None:
                return Outcome(
                    "ignored",
                    f"not applied: a later event for this patient "
                    f"({later.isoformat()}) was already applied",
                )
    return handler(adt, at)


# --- one function per trigger event ----------------------------------------------------


def _a01_admit(adt: Adt, at: datetime | None) -> Outcome:
    bed_id, code = adt.bed_place()
    stay = adt.moves.admit(
        adt.tx,
        bed_id,
        adt.patient_in(),
        adt.actor,
        at=at,
        source=adt.short("PV1", 14, 40) or "pas",
        visit_number=adt.visit(),
    )
    adt.advance(stay.patient, at)
    return Outcome("accepted", f"admitted to {code}")


def _a04_register(adt: Adt, at: datetime | None) -> Outcome:
    find_or_create_patient(adt.tx.session, adt.patient_in())
    return Outcome("accepted", "patient registered (no bed change)")


def _pending_admit(adt: Adt, at: datetime | None) -> Outcome:
    patient = find_or_create_patient(adt.tx.session, adt.patient_in())
    place = adt.place(42) or adt.place(3)
    expected = parse_ts(adt.msg.get("PV2", 8), "PV2-8", adt.tz)
    move = adt.moves.expect(
        adt.tx,
        "admit",
        patient,
        adt.actor,
        to_bed_id=place.bed_id if place else None,
        to_ward_id=place.ward_id if place else None,
        expected_at=expected or at,
        source=f"HL7 {adt.trigger}",
        at=at,
    )
    where = (place.bed_code or place.ward_code) if place else "no location yet"
    held = ", bed reserved" if move.reserved else ""
    return Outcome("accepted", f"expected admission ({where}){held}")


def _a02_transfer(adt: Adt, at: datetime | None) -> Outcome:
    patient = adt.known_patient()
    stay = adt.open_stay(patient)
    bed_id, code = adt.bed_place()
    if stay.bed_id == bed_id:
        adt.advance(patient, at)
        return Outcome("ignored", f"already in {code}: nothing to move")
    adt.moves.transfer(adt.tx, stay, bed_id, adt.actor, at=at)
    adt.advance(patient, at)
    return Outcome("accepted", f"moved to {code}")


def _a03_discharge(adt: Adt, at: datetime | None) -> Outcome:
    patient = adt.known_patient()
    stay = adt.open_stay(patient)
    destination = adt.msg.get("PV1", 37) or adt.msg.get("PV1", 36) or None
    adt.moves.discharge(
        adt.tx,
        stay,
        adt.actor,
        destination=destination,
        pathway=None,
        at=parse_ts(adt.msg.get("PV1", 45), "PV1-45", adt.tz) or at,
    )
    adt.advance(patient, at)
    return Outcome("accepted", "discharged; bed awaits cleaning")


def _a08_update(adt: Adt, at: datetime | None) -> Outcome:
    patient = find_or_create_patient(adt.tx.session, adt.patient_in())
    stay = open_stay_of(adt.tx.session, patient)
    edd = parse_ts(adt.msg.get("PV2", 9), "PV2-9", adt.tz)
    if stay is not None and edd is not None:
        stay.expected_discharge_date = edd.astimezone(adt.tz).date()
    return Outcome("accepted", "patient details updated")


def _a11_cancel_admit(adt: Adt, at: datetime | None) -> Outcome:
    patient = adt.known_patient()
    stay = adt.open_stay(patient)
    adt.moves.cancel_admission(adt.tx, stay, adt.actor, at=at)
    return Outcome("accepted", "admission cancelled; bed back as it was")


def _a12_cancel_transfer(adt: Adt, at: datetime | None) -> Outcome:
    patient = adt.known_patient()
    stay = adt.open_stay(patient)
    adt.moves.cancel_transfer(adt.tx, stay, adt.actor, at=at)
    return Outcome("accepted", "transfer cancelled; patient back in the previous bed")


def _a13_cancel_discharge(adt: Adt, at: datetime | None) -> Outcome:
    patient = adt.known_patient()
    stay = adt.last_stay(patient)
    adt.moves.cancel_discharge(adt.tx, stay, adt.actor, at=at)
    return Outcome("accepted", "discharge cancelled; patient back in their bed")


def _a15_pending_transfer(adt: Adt, at: datetime | None) -> Outcome:
    patient = adt.known_patient()
    stay = adt.open_stay(patient)
    place = adt.place(42)
    if place is None:
        raise Hl7Error("PV1-42 (pending location) is empty", code="101", location="PV1^1^42")
    move = adt.moves.expect(
        adt.tx,
        "transfer",
        patient,
        adt.actor,
        stay=stay,
        to_bed_id=place.bed_id,
        to_ward_id=place.ward_id,
        expected_at=at,
        source="HL7 A15",
        at=at,
    )
    held = ", bed reserved" if move.reserved else ""
    return Outcome("accepted", f"expected transfer to {place.bed_code or place.ward_code}{held}")


def _a16_pending_discharge(adt: Adt, at: datetime | None) -> Outcome:
    patient = adt.known_patient()
    stay = adt.open_stay(patient)
    expected = parse_ts(adt.msg.get("PV2", 9), "PV2-9", adt.tz) or at
    adt.moves.expect(
        adt.tx,
        "discharge",
        patient,
        adt.actor,
        stay=stay,
        expected_at=expected,
        source="HL7 A16",
        at=at,
    )
    if expected is not None:
        stay.expected_discharge_date = expected.astimezone(adt.tz).date()
    return Outcome("accepted", "expected discharge recorded")


def _cancel_pending(kind: str) -> Callable[[Adt, datetime | None], Outcome]:
    def handler(adt: Adt, at: datetime | None) -> Outcome:
        adt.moves.cancel_expected(adt.tx, kind, adt.known_patient(), adt.actor, at=at)
        return Outcome("accepted", f"pending {kind} cancelled")

    return handler


def _a17_swap(adt: Adt, at: datetime | None) -> Outcome:
    if len(adt.msg.segments("PID")) < 2 or len(adt.msg.segments("PV1")) < 2:
        raise Hl7Error("A17 needs two PID/PV1 groups", code="100", location="PID")
    first, second = adt.known_patient(1), adt.known_patient(2)
    if first.id == second.id:
        raise Hl7Error("A17 names the same patient twice", code="205", location="PID^2^3")
    a, b = adt.open_stay(first, 1), adt.open_stay(second, 2)
    adt.moves.swap(adt.tx, a, b, adt.actor, at=at)
    adt.advance(first, at)
    adt.advance(second, at)
    return Outcome("accepted", "patients swapped beds")


def _a20_bed_status(adt: Adt, at: datetime | None) -> Outcome:
    g = adt.msg.get
    if not adt.msg.has("NPU"):
        raise Hl7Error("A20 needs an NPU segment", code="100", location="NPU")
    place = adt.npu_place()
    if place is None or place.bed_id is None:
        raise Hl7Error("NPU-1 names no bed", code="101", location="NPU^1^1")
    status = g("NPU", 2).upper()
    if status == "O":
        raise Hl7Error(
            "NPU-2 'O' (occupied) cannot be set without a patient: send an admission",
            code="103",
            location="NPU^1^2",
        )
    if status not in NPU_STATES:
        raise Hl7Error(
            f"NPU-2 {status!r} is not a bed status of table 0116", code="103", location="NPU^1^2"
        )
    bed = lock_bed(adt.tx.session, place.bed_id)
    if at is not None and at < bed.state_since:
        return Outcome(
            "ignored", f"not applied: the bed changed later ({bed.state_since.isoformat()})"
        )
    target, reason = NPU_STATES[status]
    if bed.state == target.value:
        return Outcome("ignored", f"{bed.code} is already {target.value}")
    try:
        adt.moves.change_state(adt.tx, bed.id, target, reason, adt.actor, at=at)
    except Conflict as exc:
        raise Hl7Error(exc.message, code="207", location="NPU^1^2") from exc
    return Outcome("accepted", f"{bed.code} is now {target.value}")


def _leave(out: bool) -> Callable[[Adt, datetime | None], Outcome]:
    def handler(adt: Adt, at: datetime | None) -> Outcome:
        patient = adt.known_patient()
        adt.moves.leave(adt.tx, adt.open_stay(patient), adt.actor, out=out, at=at)
        adt.advance(patient, at)
        return Outcome("accepted", "leave of absence " + ("started" if out else "ended"))

    return handler


HANDLERS: dict[str, Callable[[Adt, datetime | None], Outcome]] = {
    "A01": _a01_admit,
    "A02": _a02_transfer,
    "A03": _a03_discharge,
    "A04": _a04_register,
    "A05": _pending_admit,
    "A08": _a08_update,
    "A11": _a11_cancel_admit,
    "A12": _a12_cancel_transfer,
    "A13": _a13_cancel_discharge,
    "A14": _pending_admit,
    "A15": _a15_pending_transfer,
    "A16": _a16_pending_discharge,
    "A17": _a17_swap,
    "A20": _a20_bed_status,
    "A21": _leave(out=True),
    "A22": _leave(out=False),
    "A25": _cancel_pending("discharge"),
    "A26": _cancel_pending("transfer"),
    "A27": _cancel_pending("admit"),
}
