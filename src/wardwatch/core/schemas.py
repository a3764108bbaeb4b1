"""The base of every request shape: strict, and free of control characters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class StrictRequest(BaseModel):
    """Requests: unknown fields are errors, and no text may hold control characters (a NUL
    cannot be stored by PostgreSQL and no feed could ever match such an identifier)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        bad = _first_control_character(data)
        if bad is not None:
            raise ValueError(f"{bad}: text may not contain control characters")
        return data


def _first_control_character(data: Any, path: str = "") -> str | None:
    if isinstance(data, str):
        return path or "value" if any(ord(c) < 32 and c not in "\t" for c in data) else None
    if isinstance(data, dict):
        for key, value in data.items():
            found = _first_control_character(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(data, list):
        for i, value in enumerate(data):
            found = _first_control_character(value, f"{path}[{i}]")
            if found:
                return found
    return None
