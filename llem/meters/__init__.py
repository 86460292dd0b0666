"""Energy meters: one module per source, behind the small ``Meter`` interface in base.py."""
from llem.meters.base import Meter, MeterUnavailable, WindowReading

__all__ = ["Meter", "MeterUnavailable", "WindowReading"]
