"""Install hints that name the environment the code runs in.

A job of the vLLM backend runs in its own venv (``.venv-vllm``), so "pip install codecarbon"
typed in the user's shell would install it in the wrong place. The hint names this Python's
own pip, and the version pyproject pins for the extra (read from llem's installed metadata).
"""
from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path


def pinned_requirements(extra: str) -> list[str]:
    """The requirements of llem's ``[extra]`` as pyproject pins them (e.g. ``codecarbon==3.3.2``),
    or ``[]`` where llem's metadata is not installed."""
    try:
        reqs = metadata.requires("llenergymeasure") or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for r in reqs:
        spec, _, marker = r.partition(";")
        if re.search(r"""extra\s*==\s*["']""" + re.escape(extra) + r"""["']""", marker):
            out.append(spec.strip().replace(" ", ""))
    return out


def _display(path: Path) -> str:
    """Relative to the working directory where that is shorter, so hints stay readable."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if len(rel) < len(str(path)) and not rel.startswith("../..") else str(path)


def pip_command() -> str:
    """The pip of the environment this Python belongs to (``.venv-vllm/bin/pip``)."""
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    if in_venv:
        pip = Path(sys.prefix) / ("Scripts/pip.exe" if os.name == "nt" else "bin/pip")
        if pip.exists():
            return _display(pip)
    return f"{_display(Path(sys.executable))} -m pip"


def pip_install_hint(extra: str) -> str:
    """``<this env's pip> install 'codecarbon==3.3.2'`` (the pins of llem's ``[extra]``)."""
    reqs = pinned_requirements(extra) or [f"llenergymeasure[{extra}]"]
    hint = f"{pip_command()} install " + " ".join(f"'{r}'" for r in reqs)
    if _is_backend_venv():
        hint += " (the backend's own venv, where this job runs)"
    return hint


def _is_backend_venv() -> bool:
    """Whether this Python is a per-backend venv (``.venv-vllm``, ``.venv-tensorrt``)."""
    return Path(sys.prefix).name.startswith(".venv-")


__all__ = ["pinned_requirements", "pip_command", "pip_install_hint"]
