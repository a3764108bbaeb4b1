"""The living demo: an example system at realistic occupancy with patients coming and going."""
