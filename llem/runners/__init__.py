"""Runners: where a job executes (this Python, a per-backend venv, a container).

``runner.<backend>`` picks one: ``local``, ``venv:<path>``, ``container`` or ``auto``.
``auto`` means: this Python if the backend imports here, else the backend's venv
(``$LLEM_VENV_<BACKEND>``, or ``.venv-<backend>`` in the repository or the working
directory), else its container image if one is available. If none fits, the study stops
before its first job and says what to install.

``jobs.execute_job`` runs one job through the runner its config picks and always leaves a
``result.json``: a failure becomes a failed result, recorded, never lost.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from llem.runners.base import Runner

_HINTS = {
    "pytorch": "pip install 'llenergymeasure[pytorch]' (torch, transformers)",
    "vllm": "run scripts/setup-vllm-env.sh (creates .venv-vllm), set LLEM_VENV_VLLM=<venv>, "
            "or pip install 'llenergymeasure[vllm]'",
    "tensorrt": "TensorRT-LLM installs only from NVIDIA's index: use runner.tensorrt=container with llem's "
                "TensorRT image, or set LLEM_VENV_TENSORRT=<venv with tensorrt_llm>",
}


def install_hint(backend: str) -> str:
    return _HINTS.get(backend, f"install the {backend} backend")


def _repo_root() -> Optional[Path]:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def find_venv(backend: str) -> Optional[Path]:
    """The per-backend venv ``auto`` would use, or None."""
    from llem.runners.venv import venv_python

    env = os.environ.get(f"LLEM_VENV_{backend.upper()}")
    if env:
        return Path(env).expanduser()  # explicit: checked (and reported) by VenvRunner.check
    for base in filter(None, (_repo_root(), Path.cwd())):
        cand = base / f".venv-{backend}"
        if venv_python(cand).exists():
            return cand
    return None


def _container_runner(backend: str):
    from llem.runners.container import ContainerRunner  # lazy: the Docker client is optional

    try:
        return ContainerRunner(backend=backend)
    except TypeError:
        return ContainerRunner()


def _container_available(backend: str) -> bool:
    try:
        runner = _container_runner(backend)
    except Exception:
        return False
    avail = getattr(runner, "available", None)
    if avail is None:
        return False
    try:
        return bool(avail() if callable(avail) else avail)
    except Exception:
        return False


def resolve_runner(backend: str, spec: str) -> Runner:
    """The runner for ``runner.<backend>=<spec>``, checked: raises ``BackendUnavailableError``
    (naming what to install) if it cannot start here."""
    from llem.errors import BackendUnavailableError
    from llem.runners.local import LocalRunner, importable
    from llem.runners.venv import VenvRunner

    if spec == "local":
        runner: Runner = LocalRunner(backend)
    elif spec.startswith("venv:"):
        runner = VenvRunner(spec.split(":", 1)[1], backend)
    elif spec == "container":
        runner = _container_runner(backend)
    elif spec == "auto":
        if importable(backend):
            runner = LocalRunner(backend)
        elif (venv := find_venv(backend)) is not None:
            runner = VenvRunner(venv, backend)
        elif _container_available(backend):
            runner = _container_runner(backend)
        else:
            raise BackendUnavailableError(f"backend={backend} cannot run here: {install_hint(backend)}")
    else:
        raise BackendUnavailableError(f"runner.{backend}={spec!r} is not allowed; allowed: local, auto, container, venv:<path>")
    runner.check()
    return runner


def runner_for(config) -> Runner:
    return resolve_runner(config.backend, getattr(config.runner, config.backend))


__all__ = ["Runner", "find_venv", "install_hint", "resolve_runner", "runner_for"]
