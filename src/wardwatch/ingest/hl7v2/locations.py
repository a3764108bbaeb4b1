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
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from wardwatch.capacity.models import Bed, HealthSystem, Site, Ward
from wardwatch.ingest.hl7v2.parse import Hl7Error

_TRAILING = re.compile(r"(\d+)\s*$")
#: Where a transaction's session keeps the structure version it has read.
VERSION_SEEN = "wardwatch.structure_version"


@dataclass(frozen=True, slots=True)
class Place:
    ward_id: str
    ward_code: str
    bed_id: str | None
    bed_code: str | None


@dataclass(frozen=True, slots=True)
class _Ward:
    id: str
    code: str
    facilities: frozenset[str]  # the site's pas_facility (or code), and its code
    pas_beds: dict[str, int]
    beds: tuple[tuple[str, str], ...]  # (id, code), in code order


class Locations:
    """The PAS location map, read from the database once per structure version.

    Wards, sites and beds change rarely and always move the system's ``structure_version``
    (a reload of the system file, a ward's or site's edit, beds added): each look-up reads
    that one number and the map is rebuilt only when it has moved, so a message costs one
    small query here instead of a ward query and a load of the ward's beds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[int, dict[str, list[_Ward]]] | None = None

    def resolve(
        self,
        s: Session,
        point_of_care: str,
        room: str,
        bed: str,
        facility: str,
        *,
        field: str,
        location: str,
    ) -> Place | None:
        """The place a PL names, None when it names nothing, or Hl7Error when it cannot be
        mapped. ``field`` names the field for people ("PV1-3"); ``location`` for the ERR
        segment."""
        if not (point_of_care or bed):
            return None
        if not point_of_care:
            raise Hl7Error(
                f"{field}: a bed without a point of care cannot be mapped",
                code="103",
                location=location,
            )
        matches = [
            w
            for w in self._wards(s).get(point_of_care, ())
            if not facility or facility in w.facilities
        ]
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
        ward = matches[0]
        if not bed:
            return Place(ward.id, ward.code, None, None)
        found = _bed(ward, room, bed)
        if found is None:
            raise Hl7Error(
                f"{field}: ward {ward.code} has no bed {bed!r}", code="103", location=location
            )
        return Place(ward.id, ward.code, *found)

    def _wards(self, s: Session) -> dict[str, list[_Ward]]:
        # Read once per transaction: a batch of messages resolves against the structure as
        # it was when the batch began, as one message would.
        version = s.info.get(VERSION_SEEN)
        if version is None:
            found = s.scalar(select(HealthSystem.structure_version).where(HealthSystem.id == 1))
            version = s.info[VERSION_SEEN] = -1 if found is None else int(found)
        cached = self._cached
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._lock:  # one rebuild per version, however many messages meet it at once
            cached = self._cached
            if cached is None or cached[0] != version:
                cached = self._cached = (version, _read_map(s))
        return cached[1]


def _read_map(s: Session) -> dict[str, list[_Ward]]:
    """Point of care -> the wards it may name."""
    beds: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for bed_id, ward_id, code in s.execute(
        select(Bed.id, Bed.ward_id, Bed.code).order_by(Bed.ward_id, Bed.code)
    ):
        beds[ward_id].append((bed_id, code))
    wards: dict[str, list[_Ward]] = defaultdict(list)
    rows: Any = s.execute(
        select(
            Ward.id,
            Ward.code,
            Ward.pas_point_of_care,
            Ward.pas_beds,
            Site.code,
            Site.pas_facility,
        ).join(Site, Ward.site_id == Site.id)
    )
    for ward_id, code, point_of_care, pas_beds, site_code, site_facility in rows:
        wards[code if point_of_care is None else point_of_care].append(
            _Ward(
                id=ward_id,
                code=code,
                facilities=frozenset({site_facility or site_code, site_code}),
                pas_beds=dict(pas_beds or {}),
                beds=tuple(beds.get(ward_id, ())),
            )
        )
    return dict(wards)


def _bed(ward: _Ward, room: str, label: str) -> tuple[str, str] | None:
    mapping = ward.pas_beds
    number = mapping.get(f"{room}-{label}") if room else None
    if number is None and room and any("-" in key for key in mapping):
        # The ward maps its beds by bay: a bay and bed it does not list is unknown, never
        # guessed from the bed number alone (bay 1 bed 1 is not bay 2 bed 1).
        return None
    if number is None:
        number = mapping.get(label)
    if number is None:
        for bed in ward.beds:
            if bed[1] == label:
                return bed
        m = _TRAILING.search(label)
        if not m:
            return None
        number = int(m.group(1))
    for bed in ward.beds:
        own = _TRAILING.search(bed[1])
        if own and int(own.group(1)) == number:
            return bed
    return None
