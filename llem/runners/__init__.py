"""Runners: where a job executes (this Python, a per-backend venv, a container)."""
from __future__ import annotations

from llem.runners.base import Runner


def runner_for(config) -> Runner:
    from llem.runners.local import LocalRunner

    spec = getattr(config.runner, config.backend)
    if spec in ("local", "auto"):
        return LocalRunner()
    raise NotImplementedError(f"runner {spec!r}")
