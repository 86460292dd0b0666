"""Environment snapshot recorded in every result (filled out further by the measurement work)."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def _version(pkg: str):
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def snapshot(devices) -> dict:
    from llem._version import __version__

    return {
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": {"llem": __version__, **{p: _version(p) for p in ("torch", "transformers", "vllm", "zeus", "codecarbon")}},
        "gpus": [{"index": d.index, "uuid": d.uuid, "name": d.name} for d in devices],
        "gpu_unavailable_reason": devices.unavailable_reason,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
