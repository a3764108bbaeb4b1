"""The front door in one place: handovers, the ED, and the per-site summaries over both."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from wardwatch.capacity.models import Site
from wardwatch.core.actor import SYSTEM
from wardwatch.core.clock import Clock
from wardwatch.db.session import Database
from wardwatch.flow.service import FlowService
from wardwatch.frontdoor.days import day_bounds, local_day
from wardwatch.frontdoor.ed import EdService
from wardwatch.frontdoor.handovers import HandoverService
from wardwatch.frontdoor.schemas import HandoverRead


class FrontDoor:
    def __init__(self, db: Database, clock: Clock, flow: FlowService, *, timezone: str) -> None:
        self.db = db
        self.clock = clock
        self.tz = ZoneInfo(timezone)
        self.handovers = HandoverService(db, clock)
        self.ed = EdService(db, clock, flow)

    def day(self, day: date | None = None) -> tuple[datetime, datetime]:
        return day_bounds(day or local_day(self.clock.now(), self.tz), self.tz)

    def front_door_sites(self) -> list[tuple[str, str]]:
        """Sites that take ambulances: acute sites, by code."""
        with self.db.read() as s:
            rows = s.execute(
                select(Site.code, Site.name).where(Site.kind == "acute").order_by(Site.code)
            ).all()
        return [(code, name) for code, name in rows]

    def handover_summary(self, day: date | None = None) -> dict[str, Any]:
        since, until = self.day(day)
        sites = [
            {
                "site": code,
                "name": name,
                **self.handovers.figures(since=since, until=until, site=code).as_dict(),
            }
            for code, name in self.front_door_sites()
        ]
        system = self.handovers.figures(since=since, until=until).as_dict()
        return {
            "day": local_day(since, self.tz).isoformat(),
            "since": since,
            "until": until,
            "sites": sites,
            "system": system,
        }

    def ed_summary(self, day: date | None = None) -> dict[str, Any]:
        since, until = self.day(day)
        now = min(self.clock.now(), until)

        def one(site: str | None) -> dict[str, Any]:
            return {
                "day": self.ed.figures(since=since, until=until, site=site).as_dict(),
                "now": self.ed.now(at=now, site=site).as_dict(),
            }

        return {
            "day": local_day(since, self.tz).isoformat(),
            "at": now,
            "sites": [
                {"site": code, "name": name, **one(code)} for code, name in self.front_door_sites()
            ],
            "system": one(None),
        }

    def check_delays(self) -> list[HandoverRead]:
        return self.handovers.check_delays(SYSTEM)
