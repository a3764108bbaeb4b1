"""Framework-free building blocks: clock, events, bus, errors, identifiers."""
