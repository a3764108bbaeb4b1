"""Every table, imported in one place for Alembic and for the schema check."""

from wardwatch.auth.models import ApiToken
from wardwatch.capacity.models import Bed, HealthSystem, Patient, Site, Stay, Ward
from wardwatch.db.audit import AuditEntry
from wardwatch.db.base import Base
from wardwatch.db.eventlog import EventRecord

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Bed",
    "EventRecord",
    "HealthSystem",
    "Patient",
    "Site",
    "Stay",
    "Ward",
]
