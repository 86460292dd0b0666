from llem.meters.base import NoMeter

__all__ = ["NoMeter"]
