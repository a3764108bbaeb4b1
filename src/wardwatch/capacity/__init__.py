"""Live capacity: the health system's places, every bed's state, patients' stays, occupancy."""
