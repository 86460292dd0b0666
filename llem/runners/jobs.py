"""One job: run an experiment where its runner says, and always leave a result.json.

A failure at run time becomes a ``failed`` result with the error's type and message: it is
recorded, never lost.
"""
from __future__ import annotations

import traceback
import uuid
from pathlib import Path
from typing import Optional

from llem._version import __version__
from llem.config.schema import ExperimentConfig
from llem.result import EnergySummary, ExperimentResult


def failed_result(config: ExperimentConfig, err: BaseException, started_at: str) -> ExperimentResult:
    from llem.measure.harness import _now

    return ExperimentResult(
        llem_version=__version__, experiment_id=uuid.uuid4().hex[:12], config_hash=config.config_hash,
        status="failed", error_type=type(err).__name__, error_message=str(err)[:2000],
        started_at=started_at, ended_at=_now(), config=config.model_dump(mode="json"),
        backend=config.backend, model=config.model.name, precision=config.precision, batch=config.batch,
        device=config.device,
        energy=EnergySummary(measured=False, not_measured_reason="the job failed before measuring", meter=config.energy.meter),
        extra={"traceback": traceback.format_exception(type(err), err, err.__traceback__)[-20:]},
    )


def execute_job(config: ExperimentConfig, job_dir: Optional[str | Path] = None, *, progress=None,
                raise_errors: bool = True) -> ExperimentResult:
    """Run in the environment the runner picks; write ``job_dir/result.json`` when given."""
    from llem.measure.harness import _now
    from llem.runners import runner_for

    started_at = _now()
    job_dir = Path(job_dir) if job_dir else None
    try:
        runner = runner_for(config)
        result = runner.run(config, job_dir, progress=progress)
    except Exception as err:
        result = failed_result(config, err, started_at)
        if job_dir is not None:
            result.save(job_dir / "result.json")
        if raise_errors:
            raise
        return result
    if job_dir is not None:
        result.save(job_dir / "result.json")
    return result
