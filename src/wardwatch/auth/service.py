"""Creating, checking and revoking tokens; recording patient-data reads."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from wardwatch.auth.models import ApiToken
from wardwatch.auth.roles import ROLE_PERMISSIONS, Permission, Role
from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.audit import AuditEntry
from wardwatch.db.session import Database

TOKEN_PREFIX = "ww_"  # noqa: S105 (a prefix, not a secret)
#: How long a token found valid is trusted without asking the database again. A token
#: revoked by another process still works for up to this long (docs/security.md).
AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    role: Role

    @property
    def actor(self) -> Actor:
        return Actor(name=self.name, role=self.role.value)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(f"role {self.role.value!r} may not do this (needs {permission.value})")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}

    def create_token(self, *, role: str, name: str) -> tuple[str, str]:
        """A new token: returns (token id, the token itself, shown only this once)."""
        try:
            valid_role = Role(role)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise ValidationFailed(f"unknown role {role!r}; choose one of: {roles}") from None
        if not name.strip():
            raise ValidationFailed("a token needs a name (who or what uses it)")
        if len(name.strip()) > 120:
            raise ValidationFailed("a token's name can be at most 120 characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = new_id("tok")
        with self.db.transaction() as tx:
            tx.session.add(
                ApiToken(
                    id=token_id,
                    name=name.strip(),
                    role=valid_role.value,
                    token_hash=hash_token(token),
                    created_at=self.clock.now(),
                )
            )
        return token_id, token

    def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for. Known-good tokens are remembered for
        :data:`AUTH_CACHE_SECONDS` (a database read per request costs more than the request);
        revoking a token in this process forgets them at once."""
        key = hash_token(token)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < AUTH_CACHE_SECONDS:
            return hit[1]
        with self.db.read() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == key))
        if row is None or row.revoked_at is not None:
            raise Unauthorized("unknown or revoked token")
        who = Principal(token_id=row.id, name=row.name, role=Role(row.role))
        if len(self._cache) > AUTH_CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), who)
        return who

    def is_active(self, token_id: str) -> bool:
        with self.db.read() as s:
            row = s.get(ApiToken, token_id)
            return row is not None and row.revoked_at is None

    def revoke(self, token_id: str) -> None:
        with self.db.transaction() as tx:
            row = tx.session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"no token with id {token_id!r}")
            row.revoked_at = self.clock.now()
        self._cache.clear()

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            return [
                {
                    "id": t.id,
                    "name": t.name,
                    "role": t.role,
                    "created_at": t.created_at,
                    "revoked_at": t.revoked_at,
                }
                for t in s.scalars(select(ApiToken).order_by(ApiToken.created_at))
            ]

    def record_read(
        self, principal: Principal, resource: str, ids: list[str], detail: str | None = None
    ) -> None:
        with self.db.transaction() as tx:
            tx.audit(
                at=self.clock.now(),
                actor=principal.actor,
                action="read",
                resource=resource,
                ids=ids,
                detail=detail,
            )

    def audit_log(self, *, limit: int = 200) -> list[dict[str, Any]]:
        with self.db.read() as s:
            rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
            return [
                {
                    "at": r.at,
                    "actor": r.actor,
                    "action": r.action,
                    "resource": r.resource,
                    "ids": r.resource_ids.split(",") if r.resource_ids else [],
                    "detail": r.detail,
                }
                for r in rows
            ]
