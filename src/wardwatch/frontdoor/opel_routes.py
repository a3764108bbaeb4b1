"""HTTP routes of OPEL: levels now, their history, and divert / mutual-aid suggestions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal
from wardwatch.frontdoor.divert import suggestions

router = APIRouter(tags=["OPEL"])
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
When = Annotated[datetime | None, Query(description="with a time zone, e.g. ...T08:00Z")]


@router.get("/api/opel")
def opel_now(rt: RuntimeDep, _: Reader, at: When = None) -> dict[str, Any]:
    """Each acute site's OPEL level and the system's, computed now (or at ``at``), with every
    parameter's value, band, weight and contribution and a one-line why. ``since`` is when
    the recorded level began (null if the level has moved since the last check)."""
    return rt.opel.compute(at).as_dict()


@router.get("/api/opel/history")
def opel_history(
    rt: RuntimeDep,
    _: Reader,
    scope: Annotated[
        str | None, Query(max_length=32, description="a site code or 'system'; all if absent")
    ] = None,
    since: When = None,
    until: When = None,
) -> list[dict[str, Any]]:
    """Periods at a level (oldest first) overlapping [since, until], with the parameters
    that produced each; ``until`` of a period is null while it is still in force."""
    return rt.opel.history(scope, since, until)


@router.get("/api/opel/divert")
def opel_divert(
    rt: RuntimeDep,
    _: Reader,
    site: Annotated[str, Query(min_length=1, max_length=32, description="a site code")],
) -> dict[str, Any]:
    """Whether the site is under pressure and, if so, the nearby sites that could help,
    nearest first, each with its reasons; the other sites with why not."""
    return suggestions(rt.opel, site).as_dict()
