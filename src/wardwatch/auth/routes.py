"""Routes for tokens and the audit log (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal

router = APIRouter(prefix="/api", tags=["security"])
Auditor = Annotated[Principal, principal_for(P.AUDIT_READ)]
Admin = Annotated[Principal, principal_for(P.SYSTEM_WRITE)]


@router.get("/audit")
def audit_log(
    rt: RuntimeDep, _: Auditor, limit: Annotated[int, Query(ge=1, le=5000)] = 200
) -> list[dict[str, Any]]:
    """Who read or changed patient data, newest first."""
    return rt.auth.audit_log(limit=limit)


@router.get("/tokens")
def list_tokens(rt: RuntimeDep, _: Admin) -> list[dict[str, Any]]:
    """Tokens by name and role (never the tokens themselves)."""
    return rt.auth.list_tokens()
