"""Shared FastAPI dependencies: the runtime and the authorised principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wardwatch.auth.roles import Permission
from wardwatch.auth.service import Principal
from wardwatch.core.errors import Unauthorized
from wardwatch.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="`wardwatch token create` prints one")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def authorize(permission: Permission) -> Callable[..., Principal]:
    """A dependency that admits only a valid token whose role holds ``permission``."""

    def dependency(
        runtime: RuntimeDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("send a bearer token: Authorization: Bearer <token>")
        principal = runtime.auth.authenticate(credentials.credentials)
        principal.require(permission)
        return principal

    dependency.__name__ = f"authorize_{permission.name.lower()}"
    dependency.required_permission = permission  # type: ignore[attr-defined]
    return dependency


def principal_for(permission: Permission) -> object:
    """``Annotated`` alias body: ``Annotated[Principal, principal_for(P.X)]``."""
    return Depends(authorize(permission))
