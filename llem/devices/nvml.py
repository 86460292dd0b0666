"""The one place that imports NVML.

``LLEM_SIMULATED_NVML=<path to JSON>`` swaps in llem's simulated NVML (a test double in
``llem.devices.simulated``) so the whole measurement path can be tested on machines without a
GPU, subprocesses included.
"""
from __future__ import annotations

import os


class NvmlUnavailable(Exception):
    pass


def nvml_module():
    spec = os.environ.get("LLEM_SIMULATED_NVML")
    if spec:
        from llem.devices import simulated

        return simulated.load(spec)
    try:
        import pynvml  # provided by nvidia-ml-py
    except ImportError as err:  # pragma: no cover - core dependency
        raise NvmlUnavailable(f"nvidia-ml-py is not installed: {err}") from None
    return pynvml
