"""Adapters from the outside world (HL7 v2, FHIR, MQTT) that call the domain services."""
