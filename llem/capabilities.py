"""What this machine can do: versions, GPUs, meters, Slurm, Docker (``llem config``)."""
from __future__ import annotations

import platform
import shutil
import sys


def machine_report() -> dict:
    from llem._version import __version__
    from llem.devices import resolve_devices
    from llem.environment import _version
    from llem.meters.select import AUTO_ORDER, _build, select_meter
    from llem.config.schema import EnergyConfig

    devices = resolve_devices()
    meters = {}
    for name in AUTO_ORDER:
        try:
            m = _build(name, devices, EnergyConfig())
            meters[name] = {"available": True, "estimated": m.estimated}
            m.close()
        except Exception as err:
            meters[name] = {"available": False, "reason": str(err)}
    auto, why = select_meter(EnergyConfig(), devices)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "llem": __version__,
        "backends": {p: _version(p) for p in ("torch", "transformers", "vllm", "tensorrt_llm")},
        "gpus": [{"index": d.index, "uuid": d.uuid, "name": d.name} for d in devices],
        "gpu_unavailable_reason": devices.unavailable_reason,
        "meters": meters,
        "auto_meter": auto.name,
        "auto_meter_reason": why,
        "slurm": bool(shutil.which("sbatch")),
        "docker": bool(shutil.which("docker")),
    }


def format_report(rep: dict) -> str:
    lines = [f"llem {rep['llem']} on Python {rep['python']} ({rep['platform']})"]
    lines.append("backends: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in rep["backends"].items()))
    if rep["gpus"]:
        for g in rep["gpus"]:
            lines.append(f"GPU {g['index']}: {g['name']} {g['uuid']}")
    else:
        lines.append(f"GPUs: none ({rep['gpu_unavailable_reason']})")
    for k, v in rep["meters"].items():
        lines.append(f"meter {k}: " + ("available" + (" (estimates)" if v.get("estimated") else "") if v["available"] else f"unavailable: {v['reason']}"))
    lines.append(f"energy=auto picks: {rep['auto_meter']} ({rep['auto_meter_reason']})")
    lines.append(f"slurm: {'yes' if rep['slurm'] else 'no'}; docker client: {'yes' if rep['docker'] else 'no'}")
    return "\n".join(lines)
