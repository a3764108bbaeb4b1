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

    @classmethod
    def from_label(cls, label: str) -> Actor:
        """The actor a logged label (``role:name``) names."""
        role, sep, name = label.partition(":")
        return cls(name=name, role=role) if sep else cls(name=label, role="system")


SYSTEM = Actor(name="wardwatch", role="system")
