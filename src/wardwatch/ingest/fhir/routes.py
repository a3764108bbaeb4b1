"""The read-only FHIR R4 API under ``/fhir``: Location, Encounter and the CapabilityStatement.

Search filters become SQL ``WHERE`` clauses and each page is fetched with ``LIMIT``/``OFFSET``,
so a national bed base is never loaded to filter it. Errors leave as OperationOutcome (the
app's exception handlers call :func:`error_response` for paths under ``/fhir``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.location import Location
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from wardwatch import __version__
from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.capacity.models import Bed, Patient, Site, Stay, Ward
from wardwatch.capacity.states import BedState
from wardwatch.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    WardWatchError,
)
from wardwatch.ingest.fhir import resources as fr
from wardwatch.runtime import Runtime

router = APIRouter(prefix="/fhir", tags=["fhir"])

Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
PatientReader = Annotated[Principal, principal_for(P.PATIENTS_READ)]

DEFAULT_COUNT = 100
MAX_COUNT = 1000
_FORMATS = {"json", "application/json", "application/fhir+json"}
_RESOURCE_TYPES = ("Location", "Encounter", "Observation", "metadata")
#: A FHIR id; ``_`` is let through too, so our own ids (``bed_…``) also work in a read.
_READ_ID = re.compile(r"^[A-Za-z0-9\-._]{1,64}$")


# --- responses and errors ------------------------------------------------------------------


class FhirResponse(Response):
    media_type = fr.MEDIA_TYPE


class SearchError(WardWatchError):
    """A search or request the FHIR API cannot process (400, OperationOutcome ``invalid``)."""

    status_code = 400
    code = "invalid"


class NotSupported(WardWatchError):
    """A FHIR interaction, method or format WardWatch does not offer."""

    code = "not-supported"

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def is_fhir_path(path: str) -> bool:
    return path == "/fhir" or path.startswith("/fhir/")


def fhir_response(
    resource: FHIRAbstractModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> FhirResponse:
    return FhirResponse(
        resource.model_dump_json(exclude_none=True), status_code=status_code, headers=headers
    )


def outcome_response(
    status_code: int,
    code: str,
    messages: Sequence[str],
    headers: Mapping[str, str] | None = None,
) -> FhirResponse:
    return fhir_response(fr.operation_outcome(code, messages), status_code, headers)


_ISSUE_CODES: list[tuple[type[WardWatchError], str]] = [
    (Unauthorized, "login"),
    (Forbidden, "forbidden"),
    (NotFound, "not-found"),
    (ValidationFailed, "invalid"),
    (Conflict, "conflict"),
    (SearchError, "invalid"),
    (NotSupported, "not-supported"),
    (Unavailable, "transient"),
]


def error_response(exc: WardWatchError, headers: Mapping[str, str] | None = None) -> FhirResponse:
    """The OperationOutcome for a WardWatch error raised under /fhir (same HTTP status)."""
    code = next((c for cls, c in _ISSUE_CODES if isinstance(exc, cls)), "invalid")
    messages = getattr(exc, "problems", None) or [exc.message]
    return outcome_response(exc.status_code, code, messages, headers)


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/fhir"


# --- search parameters ---------------------------------------------------------------------


def _collect(items: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """The request's search parameters, each at most once; empty values are ignored."""
    known = set(allowed) | {"_format"}
    out: dict[str, str] = {}
    for name, value in items:
        if name not in known:
            supported = ", ".join(sorted(known))
            raise SearchError(f"unsupported search parameter {name!r} (supported: {supported})")
        if value == "":
            continue
        if "\x00" in value:
            raise SearchError(f"{name}: the value contains a NUL character")
        if name in out:
            raise SearchError(
                f"give {name} once: separate alternatives with commas (AND is not supported)"
            )
        out[name] = value
    fmt = out.pop("_format", None)
    if fmt is not None and fmt.replace(" ", "+") not in _FORMATS:
        raise NotSupported("only JSON is supported (_format=json)", 406)
    return out


def _check_format(request: Request) -> None:
    fmt = request.query_params.get("_format")
    if fmt and fmt.replace(" ", "+") not in _FORMATS:
        raise NotSupported("only JSON is supported (_format=json)", 406)


def _values(raw: str) -> list[str]:
    return [v.strip() for v in raw.split(",") if v.strip()]


def _token(raw: str) -> tuple[str | None, str]:
    """``system|code`` → (system, code); ``|code`` → ("", code); ``code`` → (None, code)."""
    if "|" not in raw:
        return None, raw
    system, code = raw.split("|", 1)
    if not code:
        raise SearchError("a token needs a code after the '|' (system|code)")
    return system, code


def _codes(raw: str, systems: set[str]) -> set[str]:
    """The codes of a token parameter whose system is absent or one of ``systems``."""
    out = set()
    for value in _values(raw):
        system, code = _token(value)
        if system is None or system in systems or system == "":
            out.add(code)
    return out


def _reference_ids(raw: str, resource_type: str) -> list[str]:
    """``Type/id``, a bare id or an absolute URL ending ``Type/id`` → our ids."""
    ids = []
    for value in _values(raw):
        if "/" in value:
            parts = value.rstrip("/").split("/")
            if len(parts) < 2 or parts[-2] != resource_type:
                raise SearchError(f"expected a {resource_type} reference ({resource_type}/<id>)")
            value = parts[-1]
        ids.append(fr.from_fhir_id(value))
    return ids


def _paging(params: dict[str, str]) -> tuple[int, int]:
    try:
        count = int(params.get("_count", DEFAULT_COUNT))
        offset = int(params.get("_offset", 0))
    except ValueError:
        raise SearchError("_count and _offset must be whole numbers") from None
    if count < 0 or offset < 0:
        raise SearchError("_count and _offset must not be negative")
    return min(count, MAX_COUNT), offset


def _page_links(
    base: str, resource_type: str, params: dict[str, str], count: int, offset: int, total: int
) -> tuple[str, str | None, str | None]:
    def url(at: int) -> str:
        query = {**params, "_count": str(count), "_offset": str(at)}
        return f"{base}/{resource_type}?{urlencode(sorted(query.items()))}"

    nxt = url(offset + count) if count and offset + count < total else None
    prev = url(max(0, offset - count)) if count and offset > 0 else None
    return url(offset), nxt, prev


def _prefix(value: str) -> str:
    """A LIKE pattern matching strings that start with ``value`` (case folded by the caller)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


# --- Location search -----------------------------------------------------------------------

LOCATION_PARAMS = (
    "_id",
    "identifier",
    "name",
    "type",
    "partof",
    "status",
    "operational-status",
    "bed-state",
    "_count",
    "_offset",
)


@dataclass
class _LocationFilter:
    kinds: set[str] = field(default_factory=lambda: {fr.SITE, fr.WARD, fr.BED})
    where: dict[str, list[ColumnElement[bool]]] = field(
        default_factory=lambda: {fr.SITE: [], fr.WARD: [], fr.BED: []}
    )
    states: set[BedState] | None = None

    def beds_only(self, states: set[BedState]) -> None:
        self.kinds &= {fr.BED}
        self.states = states if self.states is None else self.states & states


def _location_filter(params: dict[str, str]) -> _LocationFilter:
    f = _LocationFilter()
    w = f.where
    if "_id" in params:
        ids = [fr.from_fhir_id(v) for v in _values(params["_id"])]
        w[fr.SITE].append(Site.id.in_(ids))
        w[fr.WARD].append(Ward.id.in_(ids))
        w[fr.BED].append(Bed.id.in_(ids))
    if "type" in params:
        f.kinds &= _codes(params["type"], {fr.PHYSICAL_TYPE_SYSTEM})
    if "name" in params:
        prefixes = [_prefix(v.lower()) for v in _values(params["name"])]
        for kind, column in ((fr.SITE, Site.name), (fr.WARD, Ward.name), (fr.BED, Bed.code)):
            w[kind].append(or_(*(func.lower(column).like(p, escape="\\") for p in prefixes)))
    if "identifier" in params:
        conds: dict[str, list[ColumnElement[bool]]] = {fr.SITE: [], fr.WARD: [], fr.BED: []}
        for value in _values(params["identifier"]):
            system, code = _token(value)
            if system in (None, "", fr.LOCATION_CODE_SYSTEM):
                conds[fr.SITE].append(Site.code == code)
                conds[fr.WARD].append(Ward.code == code)
                conds[fr.BED].append(Bed.code == code)
            elif system == fr.ODS_SITE_SYSTEM and fr.looks_like_ods_site_code(code):
                conds[fr.SITE].append(Site.code == code)
        for kind, found in conds.items():
            w[kind].append(or_(*found) if found else false())
    if "partof" in params:
        parents = _reference_ids(params["partof"], "Location")
        f.kinds.discard(fr.SITE)
        w[fr.WARD].append(Ward.site_id.in_(parents))
        w[fr.BED].append(Bed.ward_id.in_(parents))
    if "status" in params:
        codes = _codes(params["status"], {fr.LOCATION_STATUS_SYSTEM, fr.V2_0116_SYSTEM})
        if "active" not in codes:  # every location is active; anything else is a bed status
            f.beds_only(fr.states_for_0116(codes - fr.LOCATION_STATUSES))
    if "operational-status" in params:
        f.beds_only(fr.states_for_0116(_codes(params["operational-status"], {fr.V2_0116_SYSTEM})))
    if "bed-state" in params:
        wanted = _codes(params["bed-state"], {fr.EXT_BED_STATE})
        unknown = wanted - {s.value for s in BedState}
        if unknown:
            allowed = ", ".join(s.value for s in BedState)
            raise SearchError(f"unknown bed-state {sorted(unknown)} (one of: {allowed})")
        f.beds_only({BedState(v) for v in wanted})
    if f.states is not None:
        w[fr.BED].append(Bed.state.in_(sorted(s.value for s in f.states)))
    return f


def _location_page(
    s: Session, f: _LocationFilter, count: int, offset: int
) -> tuple[list[Location], int]:
    """Sites, then wards, then beds (each by code): counted and paged in SQL."""
    queries: list[tuple[str, Any, Any]] = [
        (fr.SITE, select(Site), Site),
        (fr.WARD, select(Ward, Site.name).join(Site, Ward.site_id == Site.id), Ward),
        (fr.BED, select(Bed, Ward.name).join(Ward, Bed.ward_id == Ward.id), Bed),
    ]
    found: list[Location] = []
    total = 0
    skip, want = offset, count
    for kind, query, table in queries:
        if kind not in f.kinds:
            continue
        where = f.where[kind]
        n = s.scalar(select(func.count()).select_from(table).where(*where)) or 0
        total += n
        if want <= 0 or skip >= n:
            skip = max(0, skip - n)
            continue
        rows = s.execute(query.where(*where).order_by(table.code).offset(skip).limit(want))
        for row in rows:
            found.append(_to_location(kind, row))
        want -= min(want, n - skip)
        skip = 0
    return found, total


def _to_location(kind: str, row: Any) -> Location:
    if kind == fr.SITE:
        return fr.site_location(row[0])
    if kind == fr.WARD:
        return fr.ward_location(row[0], row[1])
    return fr.bed_location(row[0], row[1])


def _read_location(s: Session, our_id: str) -> Location | None:
    kind = our_id.split("_", 1)[0]
    if kind == fr.ID_PREFIX[fr.SITE]:
        site = s.get(Site, our_id)
        return fr.site_location(site) if site else None
    if kind == fr.ID_PREFIX[fr.WARD]:
        row = s.execute(
            select(Ward, Site.name).join(Site, Ward.site_id == Site.id).where(Ward.id == our_id)
        ).first()
        return fr.ward_location(row[0], row[1]) if row else None
    if kind == fr.ID_PREFIX[fr.BED]:
        bed_row = s.execute(
            select(Bed, Ward.name).join(Ward, Bed.ward_id == Ward.id).where(Bed.id == our_id)
        ).first()
        return fr.bed_location(bed_row[0], bed_row[1]) if bed_row else None
    return None


# --- Encounter search ----------------------------------------------------------------------

ENCOUNTER_PARAMS = (
    "_id",
    "patient",
    "patient:identifier",
    "subject",
    "subject:identifier",
    "location",
    "status",
    "_count",
    "_offset",
)

_OPEN = Stay.discharged_at.is_(None)
_ENCOUNTER_STATUS_SQL: dict[str, ColumnElement[bool]] = {
    "in-progress": and_(_OPEN, Stay.on_leave_since.is_(None)),
    "onleave": and_(_OPEN, Stay.on_leave_since.is_not(None)),
    "finished": and_(Stay.discharged_at.is_not(None), Stay.cancelled_at.is_(None)),
    "cancelled": Stay.cancelled_at.is_not(None),
}


def _patient_condition(raw: str) -> ColumnElement[bool]:
    """Patients by identifier. Never echo the value: it may be an NHS number."""
    conds: list[ColumnElement[bool]] = []
    for value in _values(raw):
        if "|" not in value and "/" in value:  # Patient/123 or a URL: not an identifier
            raise SearchError(
                "there are no Patient resources here: search by identifier, e.g. "
                f"patient={fr.NHS_NUMBER_SYSTEM}|<NHS number>"
            )
        system, code = _token(value)
        if system in (None, ""):
            conds.append(or_(Patient.nhs_number == code, Patient.local_id == code))
        elif system == fr.NHS_NUMBER_SYSTEM:
            conds.append(Patient.nhs_number == code)
        elif system == fr.LOCAL_PATIENT_SYSTEM:
            conds.append(Patient.local_id == code)
    return or_(*conds) if conds else false()


def _encounter_where(params: dict[str, str]) -> tuple[list[ColumnElement[bool]], bool]:
    """The WHERE clauses, and whether the search names a patient (audited even if empty)."""
    where: list[ColumnElement[bool]] = []
    by_patient = False
    if "_id" in params:
        where.append(Stay.id.in_([fr.from_fhir_id(v) for v in _values(params["_id"])]))
    for name in ("patient", "patient:identifier", "subject", "subject:identifier"):
        if name in params:
            where.append(_patient_condition(params[name]))
            by_patient = True
    if "location" in params:
        where.append(Stay.bed_id.in_(_reference_ids(params["location"], "Location")))
    if "status" in params:
        codes = _codes(params["status"], {fr.ENCOUNTER_STATUS_SYSTEM})
        found = [_ENCOUNTER_STATUS_SQL[c] for c in sorted(codes) if c in _ENCOUNTER_STATUS_SQL]
        where.append(or_(*found) if found else false())
    return where, by_patient


def _encounter_page(
    s: Session, where: list[ColumnElement[bool]], count: int, offset: int
) -> tuple[list[Encounter], list[str], int]:
    joined = (
        select(Stay, Patient, Bed)
        .join(Patient, Stay.patient_id == Patient.id)
        .join(Bed, Stay.bed_id == Bed.id)
    )
    total = (
        s.scalar(
            select(func.count())
            .select_from(Stay)
            .join(Patient, Stay.patient_id == Patient.id)
            .where(*where)
        )
        or 0
    )
    if count == 0 or offset >= total:
        return [], [], total
    rows = s.execute(
        joined.where(*where)
        .order_by(Stay.admitted_at.desc(), Stay.id.desc())
        .offset(offset)
        .limit(count)
    ).all()
    return [fr.stay_encounter(*row) for row in rows], [row[0].id for row in rows], total


# --- routes --------------------------------------------------------------------------------


@router.get("/metadata", response_class=FhirResponse)
def metadata(request: Request, rt: RuntimeDep, _: Reader) -> FhirResponse:
    """The CapabilityStatement. Needs a token like every other /fhir route."""
    _check_format(request)
    return fhir_response(fr.capability_statement(_base(request), __version__, rt.clock.now()))


def _search_locations(rt: Runtime, request: Request, items: Iterable[tuple[str, str]]) -> Response:
    params = _collect(items, LOCATION_PARAMS)
    count, offset = _paging(params)
    f = _location_filter(params)
    with rt.db.read() as s:
        found, total = _location_page(s, f, count, offset)
    base = _base(request)
    self_url, nxt, prev = _page_links(base, "Location", params, count, offset, total)
    return fhir_response(fr.searchset(fr.Page(found, total, self_url, nxt, prev), base))


@router.get("/Location", response_class=FhirResponse)
def search_locations(request: Request, rt: RuntimeDep, _: Reader) -> Response:
    """Search sites, wards and beds: see docs/integrations/fhir.md for the parameters."""
    return _search_locations(rt, request, request.query_params.multi_items())


@router.post("/Location/_search", response_class=FhirResponse)
async def search_locations_post(request: Request, rt: RuntimeDep, _: Reader) -> Response:
    """The same search with the parameters in a form body."""
    items = await _form_items(request)
    return await run_in_threadpool(_search_locations, rt, request, items)


@router.get("/Location/{location_id}", response_class=FhirResponse)
def read_location(location_id: str, request: Request, rt: RuntimeDep, _: Reader) -> Response:
    _check_format(request)
    location = None
    if _READ_ID.match(location_id):
        with rt.db.read() as s:
            location = _read_location(s, fr.from_fhir_id(location_id))
    if location is None:
        raise NotFound(f"no Location with id {location_id!r}")
    return fhir_response(location)


def _search_encounters(
    rt: Runtime, who: Principal, request: Request, items: Iterable[tuple[str, str]]
) -> Response:
    params = _collect(items, ENCOUNTER_PARAMS)
    count, offset = _paging(params)
    where, by_patient = _encounter_where(params)
    with rt.db.read() as s:
        found, ids, total = _encounter_page(s, where, count, offset)
    if ids or by_patient:
        detail = "fhir search by patient" if by_patient else "fhir search"
        rt.auth.record_read(who, "encounter", ids, detail=detail)
    base = _base(request)
    self_url, nxt, prev = _page_links(base, "Encounter", params, count, offset, total)
    return fhir_response(fr.searchset(fr.Page(found, total, self_url, nxt, prev), base))


@router.get("/Encounter", response_class=FhirResponse)
def search_encounters(request: Request, rt: RuntimeDep, who: PatientReader) -> Response:
    """Search stays (patient data, audited). Prefer POST /fhir/Encounter/_search for patient
    searches: it keeps the NHS number out of URLs and access logs."""
    return _search_encounters(rt, who, request, request.query_params.multi_items())


@router.post("/Encounter/_search", response_class=FhirResponse)
async def search_encounters_post(request: Request, rt: RuntimeDep, who: PatientReader) -> Response:
    """The same search with the parameters in an ``application/x-www-form-urlencoded`` body."""
    items = await _form_items(request)
    return await run_in_threadpool(_search_encounters, rt, who, request, items)


@router.get("/Encounter/{encounter_id}", response_class=FhirResponse)
def read_encounter(
    encounter_id: str, request: Request, rt: RuntimeDep, who: PatientReader
) -> Response:
    _check_format(request)
    found: list[Encounter] = []
    stay_id = fr.from_fhir_id(encounter_id)
    if _READ_ID.match(encounter_id):
        with rt.db.read() as s:
            found, _, _ = _encounter_page(s, [Stay.id == stay_id], 1, 0)
    if not found:
        raise NotFound("no Encounter with that id")  # never echoed: it could be anything
    rt.auth.record_read(who, "encounter", [stay_id], detail="fhir read")
    return fhir_response(found[0])


async def _form_items(request: Request) -> list[tuple[str, str]]:
    """Query parameters plus those of a form body (FHIR search by POST)."""
    items = list(request.query_params.multi_items())
    body = await request.body()
    if body:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise NotSupported("POST _search takes an application/x-www-form-urlencoded body", 415)
        try:
            items += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise SearchError("the form body could not be parsed") from None
    return items


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_class=FhirResponse,
)
def unsupported(path: str, request: Request, _: Reader) -> Response:
    """Anything else under /fhir: an OperationOutcome rather than a bare 404 or 405."""
    first = path.split("/", 1)[0]
    if first not in _RESOURCE_TYPES:
        supported = ", ".join(_RESOURCE_TYPES)
        raise NotFound(f"unknown resource type or path (supported: {supported})")
    if request.method != "GET":
        raise NotSupported(f"{request.method}: WardWatch's FHIR API is read-only", 405)
    raise NotSupported("interaction not supported (read, search and metadata only)", 400)
