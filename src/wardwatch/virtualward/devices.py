"""Devices and their links to enrolled patients: what attributing readings relies on.

Ingest files a device's reading against the enrolment the device was linked to *at the
reading's time* (hazard HAZ-V02), so the rules here keep that history unambiguous: a device
is linked to one patient at a time, a link never starts in the future, before the enrolment
or before the device's previous link ended. :class:`VirtualWardService` owns the transaction
and records the enrolment's ``vw.device_*`` events around these calls.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from wardwatch.core.actor import Actor
from wardwatch.core.clock import Clock
from wardwatch.core.errors import Conflict, NotFound, ValidationFailed
from wardwatch.core.ids import new_id
from wardwatch.db.session import Database
from wardwatch.virtualward import views
from wardwatch.virtualward.models import Device, DeviceLink, Enrolment
from wardwatch.virtualward.schemas import DeviceIn, DeviceRead


class DeviceRegistry:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def register(self, req: DeviceIn, actor: Actor) -> DeviceRead:
        with self.db.transaction() as tx:
            if tx.session.scalar(select(Device.id).where(Device.serial == req.serial)):
                raise Conflict(f"device {req.serial} is already registered")
            tx.session.add(
                Device(
                    id=new_id("dev"),
                    serial=req.serial,
                    kind=req.kind,
                    model=req.model,
                    registered_at=self.clock.now(),
                    registered_by=actor.label,
                )
            )
            tx.record(
                "vw.device_registered",
                at=self.clock.now(),
                actor=actor,
                data={"device": req.serial, "kind": req.kind},
            )
        return self.get(req.serial)

    def get(self, serial: str) -> DeviceRead:
        with self.db.read() as s:
            found = views.devices(s, serial=serial)
        if not found:
            raise NotFound(f"no device {serial}")
        return found[0]

    def all(self) -> list[DeviceRead]:
        with self.db.read() as s:
            return views.devices(s)

    def link_time(self, enrolment: Enrolment, at: datetime | None) -> datetime:
        """When a link asked for by a person starts: now unless they said (a device put on
        earlier and only now recorded), never in the future or before the enrolment."""
        now = self.clock.now()
        at = at or now
        if at.tzinfo is None:
            raise ValidationFailed("'at' must carry a time zone")
        if at > now:
            raise ValidationFailed("a device cannot be linked from a time in the future")
        if at < enrolment.enrolled_at:
            raise ValidationFailed("a device cannot be linked from before the enrolment")
        return at

    @staticmethod
    def link(s: Session, enrolment: Enrolment, serial: str, at: datetime, actor: Actor) -> None:
        """Link the device from ``at``, under its row lock; refused while it is linked to
        anyone, or if ``at`` is before its previous link ended."""
        device = s.scalar(select(Device).where(Device.serial == serial).with_for_update())
        if device is None:
            raise NotFound(f"no device {serial}: register it first")
        if device.retired_at is not None:
            raise Conflict(f"device {serial} is retired")
        current = s.scalar(
            select(DeviceLink).where(
                DeviceLink.device_id == device.id, DeviceLink.unlinked_at.is_(None)
            )
        )
        if current is not None:
            who = "this patient" if current.enrolment_id == enrolment.id else "another patient"
            raise Conflict(f"device {serial} is linked to {who}: unlink it first")
        last_end = s.scalar(
            select(DeviceLink.unlinked_at)
            .where(DeviceLink.device_id == device.id)
            .order_by(DeviceLink.unlinked_at.desc())
            .limit(1)
        )
        if last_end is not None and at < last_end:
            raise Conflict(
                f"device {serial} was linked to someone until {last_end.isoformat()}: a new "
                "link cannot start before that"
            )
        s.add(
            DeviceLink(
                id=new_id("dvl"),
                device_id=device.id,
                enrolment_id=enrolment.id,
                linked_at=at,
                linked_by=actor.label,
            )
        )

    def unlink(self, s: Session, enrolment: Enrolment, serial: str, actor: Actor) -> None:
        """End the device's open link to this enrolment, now."""
        link = s.scalar(
            select(DeviceLink)
            .join(Device, Device.id == DeviceLink.device_id)
            .where(
                Device.serial == serial,
                DeviceLink.enrolment_id == enrolment.id,
                DeviceLink.unlinked_at.is_(None),
            )
        )
        if link is None:
            raise NotFound(f"device {serial} is not linked to this patient")
        link.unlinked_at, link.unlinked_by = self.clock.now(), actor.label
