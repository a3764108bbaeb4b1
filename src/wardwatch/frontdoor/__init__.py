"""The front door: ambulance handovers, ED attendances, OPEL and the daily report."""
