"""The library surface. The CLI is a thin layer over these functions."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from llem.config.schema import ExperimentConfig, StudyConfig
from llem.result import ExperimentResult


def run_experiment(config: ExperimentConfig | dict, output_dir: Optional[str | Path] = None,
                   *, progress=None) -> ExperimentResult:
    """Run one experiment in this process and return its result.

    With ``output_dir`` the result is also written there as ``result.json`` (atomically), with
    ``timeseries.parquet`` beside it: the same files ``llem run`` writes.
    """
    if isinstance(config, dict):
        from llem.config.compose import validate

        config = validate(config)
    from llem.runners.jobs import execute_job

    return execute_job(config, output_dir, progress=progress)


def run_study(study: StudyConfig | dict, *, quiet: bool = True, live: str | None = None):
    """Run a grid of experiments, each in its own process, and return the ``StudyResult``.

    ``live``: the URL of an ``llem serve`` server that shows the study's progress as it runs
    (token in ``LLEM_API_TOKEN``; docs/serve.md)."""
    if isinstance(study, dict):
        study = StudyConfig.model_validate(study)
    from llem.cli.study_api import run_study as _run

    return _run(study, quiet=quiet, live=live)
