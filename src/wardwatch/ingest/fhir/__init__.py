"""A read-only FHIR R4 face: beds, wards and sites as Location; stays as Encounter.

``resources`` maps rows to ``fhir.resources`` R4B models (pure, no I/O); ``routes`` serves
them under ``/fhir``. See docs/integrations/fhir.md.
"""
