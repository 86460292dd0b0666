"""Pick a meter: ``energy=auto`` tries Zeus, the NVML counter, NVML power, CodeCarbon, none."""
from __future__ import annotations

from llem.meters.base import Meter, MeterUnavailable, NoMeter

AUTO_ORDER = ("zeus", "nvml", "nvml_power", "codecarbon")


def _build(name: str, devices, energy_cfg) -> Meter:
    if name == "none":
        return NoMeter(devices)
    if name == "nvml":
        from llem.meters.nvml import NvmlCounterMeter

        return NvmlCounterMeter(devices)
    if name == "nvml_power":
        from llem.meters.nvml_power import NvmlPowerMeter

        return NvmlPowerMeter(devices)
    if name == "zeus":
        from llem.meters.zeus import ZeusMeter

        return ZeusMeter(devices)
    if name == "codecarbon":
        from llem.meters.codecarbon import CodeCarbonMeter

        return CodeCarbonMeter(devices, country_iso_code=energy_cfg.country_iso_code)
    raise MeterUnavailable(f"unknown meter {name!r}")


def select_meter(energy_cfg, devices) -> tuple[Meter, str]:
    """The meter and a sentence saying why it was chosen (goes into measurement_methodology)."""
    if energy_cfg.meter == "none":
        return NoMeter(devices), "energy=none was requested"
    if energy_cfg.meter != "auto":
        try:
            return _build(energy_cfg.meter, devices, energy_cfg), f"energy={energy_cfg.meter} was requested"
        except (MeterUnavailable, ImportError) as err:
            return NoMeter(devices, reason=f"energy={energy_cfg.meter} unavailable: {err}"), \
                f"energy={energy_cfg.meter} was requested but is unavailable: {err}"
    skipped: dict[str, list[str]] = {}  # reason -> meters, so a shared cause is said once
    for name in AUTO_ORDER:
        try:
            meter = _build(name, devices, energy_cfg)
        except (MeterUnavailable, ImportError) as err:
            skipped.setdefault(str(err), []).append(name)
            continue
        return meter, "auto picked " + name + (" (skipped " + _said(skipped) + ")" if skipped else "")
    reason = "no energy meter is available here (" + _said(skipped) + ")"
    return NoMeter(devices, reason=reason), "auto found no meter: " + _said(skipped)


def _said(skipped: dict[str, list[str]]) -> str:
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in skipped.items())
