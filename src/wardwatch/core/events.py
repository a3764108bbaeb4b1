"""Domain events: what happened, published to live subscribers only after commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DomainEvent:
    seq: int
    type: str
    at: datetime
    site_code: str | None = None
    ward_code: str | None = None
    bed_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "at": self.at.isoformat(),
            "site": self.site_code,
            "ward": self.ward_code,
            "bed_id": self.bed_id,
            "data": self.data,
        }
