"""Every table, imported in one place for Alembic and for the schema check."""

from wardwatch.auth.models import ApiToken
from wardwatch.capacity.counts import WardStateCount
from wardwatch.capacity.models import Bed, HealthSystem, Patient, PendingMove, Site, Stay, Ward
from wardwatch.db.audit import AuditEntry
from wardwatch.db.base import Base
from wardwatch.db.eventlog import EventRecord
from wardwatch.flow.models import BedRequest
from wardwatch.frontdoor.models import Attendance, Handover, OpelLevel
from wardwatch.ingest.hl7v2.models import Hl7Message, Hl7PatientClock
from wardwatch.notify.models import Notification
from wardwatch.tasks.models import Escalation, Task, Team
from wardwatch.virtualward.models import (
    Alert,
    AlertNote,
    Device,
    DeviceLink,
    Enrolment,
    Latest,
    Reading,
    Rejected,
    Score,
)

__all__ = [
    "Alert",
    "AlertNote",
    "ApiToken",
    "Attendance",
    "AuditEntry",
    "Base",
    "Bed",
    "BedRequest",
    "Device",
    "DeviceLink",
    "Enrolment",
    "Escalation",
    "EventRecord",
    "Handover",
    "HealthSystem",
    "Hl7Message",
    "Hl7PatientClock",
    "Latest",
    "Notification",
    "OpelLevel",
    "Patient",
    "PendingMove",
    "Reading",
    "Rejected",
    "Score",
    "Site",
    "Stay",
    "Task",
    "Team",
    "Ward",
    "WardStateCount",
]
