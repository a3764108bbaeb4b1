"""Live updates: server-sent events fed by the bus, after commit."""
