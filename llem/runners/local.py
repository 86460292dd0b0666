from __future__ import annotations

from llem.runners.base import Runner


class LocalRunner(Runner):
    """In this Python process: the launcher already gives each study job its own process."""

    name = "local"

    def run(self, config, job_dir, *, progress=None):
        from llem.harness import run

        return run(config, job_dir, progress=progress)
