"""Who did something: a person's token, a feed, the demo generator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name}"


SYSTEM = Actor(name="wardwatch", role="system")
