"""Roles and what each may do. Every route names one permission; nothing else grants access."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    CONTROL_CENTRE = "control-centre"
    WARD = "ward"
    HOUSEKEEPING = "housekeeping"
    PORTER = "porter"
    CLINICIAN = "clinician"
    INTEGRATION = "integration"
    READ_ONLY = "read-only"
    DEVICE = "device"  # a wearable gateway or patient app: sends readings, reads nothing
    AMBULANCE = "ambulance"  # an ambulance service's feed: pre-alerts, arrivals, handovers


class Permission(StrEnum):
    CAPACITY_READ = "capacity:read"  # beds, wards, occupancy: no patient data
    PATIENTS_READ = "patients:read"  # stays with NHS numbers (audited)
    PATIENTS_WRITE = "patients:write"  # admit, transfer, discharge, dates (audited)
    BEDS_WRITE = "beds:write"  # any manual bed state change
    BEDS_CLEAN = "beds:clean"  # only the cleaning steps of the bed state machine
    SYSTEM_WRITE = "system:write"  # sites, wards, beds, loading the system file
    AUDIT_READ = "audit:read"
    FEEDS_ADMIN = "feeds:admin"  # HL7 message log, quarantine, replay (holds patient data)
    NOTIFY_ADMIN = "notify:admin"  # notifications' delivery status, dead letters, retry
    TASKS_WORK = "tasks:work"  # accept, start and finish team tasks
    TASKS_MANAGE = "tasks:manage"  # create, cancel, reprioritise tasks; teams; escalations
    VITALS_SEND = "vitals:send"  # post readings (devices, gateways, integration engines)
    VW_CARE = "virtualward:care"  # enrol, plans, thresholds, scale, devices, triage alerts
    HANDOVERS_WRITE = "handovers:write"  # ambulance pre-alert, arrival, handover, clear
    ED_WRITE = "ed:write"  # ED attendances: arrival, decision to admit, departure


P = Permission
_READ = {P.CAPACITY_READ}
_CLINICAL = {P.CAPACITY_READ, P.PATIENTS_READ, P.PATIENTS_WRITE, P.BEDS_WRITE, P.BEDS_CLEAN}
_COORDINATING = _CLINICAL | {P.TASKS_WORK, P.TASKS_MANAGE, P.HANDOVERS_WRITE, P.ED_WRITE}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.CONTROL_CENTRE: frozenset(_COORDINATING | {P.NOTIFY_ADMIN, P.VW_CARE}),
    Role.WARD: frozenset(_COORDINATING),
    Role.HOUSEKEEPING: frozenset(_READ | {P.BEDS_CLEAN, P.TASKS_WORK}),
    Role.PORTER: frozenset(_READ | {P.TASKS_WORK}),
    Role.CLINICIAN: frozenset(_READ | {P.PATIENTS_READ, P.VW_CARE}),
    Role.INTEGRATION: frozenset(
        _CLINICAL | {P.FEEDS_ADMIN, P.NOTIFY_ADMIN, P.VITALS_SEND, P.HANDOVERS_WRITE, P.ED_WRITE}
    ),
    Role.READ_ONLY: frozenset(_READ),
    Role.DEVICE: frozenset({P.VITALS_SEND}),
    Role.AMBULANCE: frozenset(_READ | {P.HANDOVERS_WRITE}),
}
