from __future__ import annotations

from abc import ABC, abstractmethod


class Runner(ABC):
    name = "runner"

    @abstractmethod
    def run(self, config, job_dir, *, progress=None):
        """Run the experiment and return its ExperimentResult."""
