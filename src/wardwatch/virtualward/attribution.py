"""Who each incoming reading belongs to: the safety-critical step of ingest (hazard HAZ-V02).

A device's reading belongs to the patient the device was linked to *at the reading's time*,
never to whoever wears it now; a reading from a device that was not linked then, or from an
unknown device, is refused. A reading sent for a patient (``nhs:...`` / ``local:...``) goes
to the enrolment that patient was on at the reading's time. Kept apart from the rest of
:mod:`wardwatch.virtualward.ingest` so this step can be read, and reviewed, on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Patient
from wardwatch.db.filters import one_of
from wardwatch.virtualward.models import Device, DeviceLink, Enrolment
from wardwatch.virtualward.readings import Prepared


def attribute(
    s: Session,
    ready: list[tuple[int, Prepared]],
    refusals: list[tuple[int, str]],
) -> tuple[dict[str, Enrolment], dict[int, str]]:
    """The enrolments the batch touches (locked, in id order) and reading index -> enrolment
    id; a reading that cannot be attributed is appended to ``refusals`` with the reason."""
    serials = {p.raw.device for _, p in ready if p.raw.device}
    devices: dict[str, str] = {}
    if serials:
        query = select(Device.serial, Device.id).where(one_of(s, Device.serial, serials))
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
            ).where(one_of(s, DeviceLink.device_id, by_id))
        ):
            links[by_id[link.device_id]].append(link)
    patient_ids = _patients(s, {p.raw.patient for _, p in ready if p.raw.patient})
    wanted_enrolments = {link.enrolment_id for ls in links.values() for link in ls}
    locked = select(Enrolment).order_by(Enrolment.id)
    conditions = []
    if wanted_enrolments:
        conditions.append(one_of(s, Enrolment.id, wanted_enrolments))
    if patient_ids:
        conditions.append(one_of(s, Enrolment.patient_id, set(patient_ids.values())))
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
        why, owner = _owner(p, devices, links, patient_ids, by_patient, enrolments)
        if owner is None:
            refusals.append((i, why))
        else:
            owner_of[i] = owner
    return enrolments, owner_of


def _patients(s: Session, refs: set[str]) -> dict[str, str]:
    """``nhs:...`` / ``local:...`` -> patient id, for those we know."""
    nhs = {r.split(":", 1)[1].replace(" ", ""): r for r in refs if r.startswith("nhs:")}
    local = {r.split(":", 1)[1]: r for r in refs if r.startswith("local:")}
    found: dict[str, str] = {}
    if nhs:
        for pid, number in s.execute(
            select(Patient.id, Patient.nhs_number).where(one_of(s, Patient.nhs_number, nhs))
        ):
            found[nhs[str(number)]] = pid
    if local:
        for pid, lid in s.execute(
            select(Patient.id, Patient.local_id).where(one_of(s, Patient.local_id, local))
        ):
            found[local[str(lid)]] = pid
    return found


def _owner(
    p: Prepared,
    devices: Mapping[str, str],
    links: Mapping[str, list[Any]],
    patient_ids: Mapping[str, str],
    by_patient: Mapping[str, list[Enrolment]],
    enrolments: Mapping[str, Enrolment],
) -> tuple[str, str | None]:
    at = p.at
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
                f"device {p.raw.device} was not linked to a patient at {at.isoformat()}: the "
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
            return f"patient {ref} was not on a virtual ward at {at.isoformat()}", None
    if at < enrolment.enrolled_at:
        return f"reading at {at.isoformat()} is from before the patient was enrolled", None
    if enrolment.ended_at is not None and at > enrolment.ended_at:
        return f"reading at {at.isoformat()} is from after the patient left the virtual ward", None
    return "", enrolment.id
