"""Mapping the PAS's locations (PV1-3 ``pointOfCare^room^bed^facility``) to our beds.

A ward is found by its ``pas_point_of_care`` (default: its code) and, when the message gives
a facility, by its site's ``pas_facility`` (default: the site code). The bed label is looked
up in the ward's ``pas_beds`` map first (as ``room-bed`` then ``bed``), then taken as a bed
code, then by the number it ends with ("B03", "3", "Bed 3" → the ward's bed 3). When a ward
maps any ``room-bed`` labels, a room and bed it does not map are refused rather than
guessed: there, bed numbers repeat from bay to bay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Bed, Site, Ward
from wardwatch.ingest.hl7v2.parse import Hl7Error

_TRAILING = re.compile(r"(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Place:
    ward_id: str
    ward_code: str
    bed_id: str | None
    bed_code: str | None


def resolve(
    s: Session,
    point_of_care: str,
    room: str,
    bed: str,
    facility: str,
    *,
    field: str,
    location: str,
) -> Place | None:
    """The place a PL names, None when it names nothing, or Hl7Error when it cannot be mapped.

    ``field`` names the field for people ("PV1-3"); ``location`` for the ERR segment.
    """
    if not (point_of_care or bed):
        return None
    if not point_of_care:
        raise Hl7Error(
            f"{field}: a bed without a point of care cannot be mapped",
            code="103",
            location=location,
        )
    query = (
        select(Ward, Site)
        .join(Site, Ward.site_id == Site.id)
        .where(func.coalesce(Ward.pas_point_of_care, Ward.code) == point_of_care)
    )
    if facility:
        query = query.where(
            or_(func.coalesce(Site.pas_facility, Site.code) == facility, Site.code == facility)
        )
    matches = s.execute(query).all()
    where = f"{point_of_care}" + (f" at {facility}" if facility else "")
    if not matches:
        raise Hl7Error(
            f"{field}: unknown location {where!r}: add it to the location mapping "
            f"(pas_point_of_care / pas_facility in the system file)",
            code="103",
            location=location,
        )
    if len(matches) > 1:
        raise Hl7Error(
            f"{field}: location {where!r} matches {len(matches)} wards: set "
            f"pas_facility on the sites or send the facility (component 4)",
            code="103",
            location=location,
        )
    ward = matches[0][0]
    if not bed:
        return Place(ward.id, ward.code, None, None)
    bed_row = _bed(s, ward, room, bed)
    if bed_row is None:
        raise Hl7Error(
            f"{field}: ward {ward.code} has no bed {bed!r}", code="103", location=location
        )
    return Place(ward.id, ward.code, bed_row.id, bed_row.code)


def _bed(s: Session, ward: Ward, room: str, label: str) -> Bed | None:
    mapping = ward.pas_beds or {}
    number = mapping.get(f"{room}-{label}") if room else None
    if number is None and room and any("-" in key for key in mapping):
        # The ward maps its beds by bay: a bay and bed it does not list is unknown, never
        # guessed from the bed number alone (bay 1 bed 1 is not bay 2 bed 1).
        return None
    if number is None:
        number = mapping.get(label)
    beds = list(s.scalars(select(Bed).where(Bed.ward_id == ward.id)))
    if number is None:
        for bed in beds:
            if bed.code == label:
                return bed
        m = _TRAILING.search(label)
        if not m:
            return None
        number = int(m.group(1))
    for bed in beds:
        own = _TRAILING.search(bed.code)
        if own and int(own.group(1)) == number:
            return bed
    return None
