"""The running parts wired together once: used by the web app, the CLI and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from wardwatch.auth.service import AuthService
from wardwatch.capacity.reports import OccupancyService
from wardwatch.capacity.service import CapacityService
from wardwatch.capacity.system import SystemService
from wardwatch.config import Settings
from wardwatch.core.bus import EventBus
from wardwatch.core.clock import Clock, SystemClock
from wardwatch.db import migrate
from wardwatch.db.session import Database, make_engine
from wardwatch.flow.service import FlowService
from wardwatch.frontdoor.opel import OpelService
from wardwatch.frontdoor.service import FrontDoor
from wardwatch.ingest.hl7v2.service import Hl7Service
from wardwatch.kpi.service import KpiService
from wardwatch.notify.service import NotifyService
from wardwatch.tasks.service import TaskService
from wardwatch.virtualward.service import VirtualWardService


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    engine: Engine
    bus: EventBus = field(default_factory=EventBus)

    def __post_init__(self) -> None:
        self.db = Database(self.engine, self.bus)
        self.system = SystemService(self.db, self.clock)
        self.capacity = CapacityService(self.db, self.clock)
        self.occupancy = OccupancyService(
            self.db,
            self.clock,
            default_target=self.settings.occupancy_target,
            timezone=self.settings.timezone,
            sitrep_hour=self.settings.sitrep_hour,
        )
        self.auth = AuthService(self.db, self.clock)
        self.tasks = TaskService(self.db, self.clock, self.capacity)
        self.flow = FlowService(self.db, self.clock, self.capacity, self.tasks)
        self.db.react(self.tasks.on_record)
        self.db.prepare(self.tasks.look_ahead)
        self.notify = NotifyService(self.db, self.clock, self.settings)
        self.db.react(self.notify.on_record)
        self.db.react(self.flow.on_record)
        self.db.prepare(self.flow.look_ahead)
        self.virtualward = VirtualWardService(
            self.db, self.clock, self.settings, self.capacity, self.flow
        )
        self.db.react(self.virtualward.on_record)
        self.frontdoor = FrontDoor(self.db, self.clock, self.flow, timezone=self.settings.timezone)
        self.db.react(self.frontdoor.ed.on_record)
        self.opel = OpelService(self.db, self.clock, self.occupancy, self.frontdoor)
        self.kpi = KpiService(self.db, self.clock, timezone=self.settings.timezone)
        self.hl7 = Hl7Service(
            self.db,
            self.clock,
            timezone=self.settings.timezone,
            retention_days=self.settings.hl7_retention_days,
            application=self.settings.hl7_application,
            ingestor=self.virtualward.ingestor,
            remind_every=timedelta(hours=self.settings.hl7_quarantine_reminder_hours),
            silence=timedelta(minutes=self.settings.hl7_silence_minutes)
            if self.settings.hl7_silence_minutes
            else None,
        )

    @classmethod
    def build(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        migrate_db: bool = True,
        bus: EventBus | None = None,
    ) -> Runtime:
        settings = settings or Settings()
        engine = make_engine(settings.resolved_database_url())
        if migrate_db:
            migrate.upgrade(engine)
        return cls(
            settings=settings, clock=clock or SystemClock(), engine=engine, bus=bus or EventBus()
        )

    def close(self) -> None:
        self.engine.dispose()
