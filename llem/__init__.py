"""llem (LLenergyMeasure): measure the energy cost of LLM inference, honestly."""
from llem._version import __version__
from llem.api import run_experiment, run_study
from llem.config.schema import ExperimentConfig, StudyConfig
from llem.result import ExperimentResult

__all__ = ["__version__", "run_experiment", "run_study", "ExperimentConfig", "StudyConfig",
           "ExperimentResult", "StudyResult"]


def __getattr__(name):
    # StudyResult lives with the results tools (llem.results), which import pandas: load it on first use.
    if name == "StudyResult":
        from llem.results.manifest import StudyResult

        return StudyResult
    raise AttributeError(name)
