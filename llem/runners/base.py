"""The runner interface: where one experiment executes (this process, a venv, a container)."""
from __future__ import annotations

from abc import ABC, abstractmethod


class Runner(ABC):
    name = "runner"

    def check(self) -> None:
        """Raise ``BackendUnavailableError`` if this runner cannot start here.

        Called for every backend of a study before its first job, so a grid that cannot run
        fails at once instead of after hours of the jobs that could.
        """

    def describe(self) -> dict:
        return {"name": self.name}

    @abstractmethod
    def run(self, config, job_dir, *, progress=None):
        """Run the experiment and return its ExperimentResult."""
