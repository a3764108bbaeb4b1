"""WardWatch: open control-centre software for a health system."""

__version__ = "0.1.0"
