"""Virtual wards: patients monitored at home, NEWS2 scoring and deterioration alerts."""
