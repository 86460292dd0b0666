"""The local runner: the harness in this Python process."""
from __future__ import annotations

import sys

from llem.runners.base import Runner

# The module each backend imports first: if it is importable here, the backend can run here.
BACKEND_MODULES = {"pytorch": "torch", "vllm": "vllm", "tensorrt": "tensorrt_llm"}


def importable(backend: str) -> bool:
    import importlib.util

    mod = BACKEND_MODULES[backend]
    if mod in sys.modules:
        return True
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


class LocalRunner(Runner):
    """In this Python process: the launcher already gives each study job its own process."""

    name = "local"

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend

    def check(self) -> None:
        if self.backend and not importable(self.backend):
            from llem.errors import BackendUnavailableError
            from llem.runners import install_hint

            raise BackendUnavailableError(
                f"runner.{self.backend}=local but {BACKEND_MODULES[self.backend]!r} is not importable in "
                f"{sys.executable}: {install_hint(self.backend)}")

    def describe(self) -> dict:
        return {"name": self.name, "python": sys.executable}

    def run(self, config, job_dir, *, progress=None):
        from llem.measure.harness import run

        return run(config, job_dir, progress=progress)
