"""Bearer tokens, roles and permissions, and the audit of patient-data access."""
