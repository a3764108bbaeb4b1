"""What the notification API returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    created_at: datetime
    rule: str
    channel: str
    kind: str
    audience: str
    event_type: str
    event_seq: int | None
    task_id: str | None
    subject: str
    body: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
