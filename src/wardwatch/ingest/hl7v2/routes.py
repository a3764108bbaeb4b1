"""Routes for the integration engineer: the HL7 message log, quarantine and replay."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from wardwatch.api.deps import RuntimeDep, principal_for
from wardwatch.auth.roles import Permission as P
from wardwatch.auth.service import Principal

router = APIRouter(prefix="/api/hl7", tags=["hl7"])
Engineer = Annotated[Principal, principal_for(P.FEEDS_ADMIN)]
Reader = Annotated[Principal, principal_for(P.CAPACITY_READ)]
Status = Literal["accepted", "ignored", "quarantined", "discarded"]


class Discard(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


@router.get("/messages")
def list_messages(
    rt: RuntimeDep,
    _: Engineer,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Messages received, oldest first (``status=quarantined`` for the quarantine queue)."""
    return rt.hl7.list(status=status, limit=limit)


@router.get("/messages/{message_id}")
def get_message(message_id: str, rt: RuntimeDep, who: Engineer) -> dict[str, Any]:
    """One message with its raw text (patient data: the read is audited)."""
    message = rt.hl7.get(message_id)
    rt.auth.record_read(who, "hl7_message", [message_id])
    return message


@router.post("/messages/{message_id}/replay")
def replay(message_id: str, rt: RuntimeDep, who: Engineer) -> dict[str, Any]:
    """Apply a quarantined message again, e.g. after adding a location mapping."""
    return rt.hl7.replay(message_id, who.actor)


@router.post("/quarantine/replay")
def replay_all(rt: RuntimeDep, who: Engineer) -> dict[str, int]:
    """Replay every quarantined message, oldest first."""
    return rt.hl7.replay_quarantined(who.actor)


@router.post("/messages/{message_id}/discard")
def discard(message_id: str, req: Discard, rt: RuntimeDep, who: Engineer) -> dict[str, Any]:
    """Take a quarantined message out of the queue for good, with a reason."""
    return rt.hl7.discard(message_id, req.reason, who.actor)


@router.get("/feeds/silent")
def silent_feeds(rt: RuntimeDep, _: Reader) -> list[dict[str, Any]]:
    """The sending systems reported silent and not heard since (HAZ-035): the board may be
    missing their moves. What the control-centre page warns of; no patient data."""
    return rt.hl7.feeds.silent()


@router.get("/feeds")
def feeds(rt: RuntimeDep, _: Engineer) -> list[dict[str, Any]]:
    """Each sending system (MSH-3|MSH-4): when it was last heard (to the minute), and since
    when it is reported silent (``WARDWATCH_HL7_SILENCE_MINUTES``)."""
    return rt.hl7.feeds.senders()
