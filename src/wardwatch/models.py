"""Every table, imported in one place for Alembic and for the schema check."""

from wardwatch.auth.models import ApiToken
from wardwatch.capacity.counts import WardStateCount
from wardwatch.capacity.models import Bed, HealthSystem, Patient, PendingMove, Site, Stay, Ward
from wardwatch.db.audit import AuditEntry
from wardwatch.db.base import Base
from wardwatch.db.eventlog import EventRecord
from wardwatch.ingest.hl7v2.models import Hl7Message, Hl7PatientClock

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Bed",
    "EventRecord",
    "HealthSystem",
    "Hl7Message",
    "Hl7PatientClock",
    "Patient",
    "PendingMove",
    "Site",
    "Stay",
    "Ward",
    "WardStateCount",
]
