"""Fixture studies for the results tests.

``data/real_tiny_result.json`` is a real result: ``run_experiment`` on the built-in tiny model on
this CPU-only machine (batch=2, measurement.cycles=2, warmup_runs=0, dataset.num_prompts=2,
output_len=4). Energy was not measured there, so the measured-energy results below are
SYNTHETIC TEST DATA derived from it: the energy numbers are made up (a smooth function of batch
and backend plus deterministic noise) and each such result carries
``extra["synthetic_test_data"]`` saying so. They exist to exercise tables, CIs and plots, not to
say anything about any backend.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd

from llem.result import (CycleResult, DeviceEnergy, EnergySummary, ExperimentResult, Phases, PhaseResult,
                         write_json_atomic)
from llem.measure.stats import headline_stats
from llem.results.manifest import JobEntry, StudyResult

DATA = Path(__file__).parent / "data"
REAL_RESULT = DATA / "real_tiny_result.json"
SYNTHETIC_NOTE = "SYNTHETIC TEST DATA: energy values fabricated for llem's results tests, not measurements"


def real_result() -> ExperimentResult:
    return ExperimentResult.load(REAL_RESULT)


def _hash(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def synthetic_result(base: ExperimentResult, *, backend: str, batch: int, j_per_token: float,
                     tokens_per_s: float, phases: bool = True, estimated: bool = False, seed: int = 0,
                     spread: float = 0.03, n_cycles: int = 3) -> ExperimentResult:
    """A completed result with measured (synthetic) energy, built on a real result's structure."""
    rng = np.random.default_rng(seed)
    out_tokens = 64 * batch
    cycles = []
    start = 6.0
    for i in range(n_cycles):
        ept = j_per_token * (1 + spread * rng.standard_normal())
        tps = tokens_per_s * (1 + spread * rng.standard_normal())
        dur = out_tokens / tps
        e = ept * out_tokens
        cycles.append(CycleResult(index=i, repeats=1, start_s=start, duration_s=dur, input_tokens=32 * batch,
                                  output_tokens=out_tokens, energy_j=e, energy_adjusted_j=e * 0.8,
                                  per_device=[DeviceEnergy(index=0, name="Synthetic GPU", energy_j=e)],
                                  energy_per_output_token_j=ept, output_tokens_per_s=tps,
                                  tokens_per_joule=1 / ept))
        start += dur
    total_e = sum(c.energy_j for c in cycles)
    total_tok = out_tokens * n_cycles
    energy = EnergySummary(measured=True, meter="synthetic", source="synthetic test data", estimated=estimated,
                           scope="gpu",
                           energy_j=total_e, energy_adjusted_j=total_e * 0.8, baseline_power_w=60.0,
                           energy_per_output_token_j=total_e / total_tok,
                           energy_adjusted_per_output_token_j=total_e * 0.8 / total_tok,
                           tokens_per_joule=total_tok / total_e,
                           per_device=[DeviceEnergy(index=0, name="Synthetic GPU", energy_j=total_e)])
    cfg = dict(base.config)
    cfg["backend"] = backend
    cfg["batch"] = batch
    stats = headline_stats(cycles)
    ph = None
    if phases:
        pre_e = total_e * 0.2
        ph = Phases(method="synthetic split", error="synthetic",
                    prefill=PhaseResult(duration_s=0.1, energy_j=pre_e, energy_adjusted_j=pre_e * 0.8,
                                        tokens=32 * batch),
                    decode=PhaseResult(duration_s=0.5, energy_j=total_e - pre_e,
                                       energy_adjusted_j=(total_e - pre_e) * 0.8, tokens=total_tok),
                    prefill_energy_per_prompt_j=pre_e / batch,
                    decode_energy_per_output_token_j=(total_e - pre_e) / total_tok)
    env = dict(base.environment)
    env["gpus"] = [{"index": 0, "name": "Synthetic GPU"}]
    return base.model_copy(update={
        "experiment_id": _hash("exp", backend, batch, seed)[:12],
        "config_hash": _hash("cfg", backend, batch), "config": cfg, "backend": backend, "batch": batch,
        "device": "cuda:0", "output_tokens": total_tok, "input_tokens": 32 * batch * n_cycles,
        "duration_s": sum(c.duration_s for c in cycles), "output_tokens_per_s": total_tok / sum(
            c.duration_s for c in cycles),
        "energy": energy, "cycles": cycles, "stats": stats, "phases": ph, "environment": env,
        "measurement_methodology": {**base.measurement_methodology, "meter": "synthetic"},
        "warnings": ["synthetic warning: estimated meter"] if estimated else [],
        "extra": {"synthetic_test_data": SYNTHETIC_NOTE},
    })


def write_timeseries(path: Path, duration_s: float = 8.0, n_devices: int = 2) -> Path:
    """A synthetic per-GPU trace in llem.measure.sampler's columns (SYNTHETIC TEST DATA): idle until 6 s,
    then two measured cycles (6-7 s and 7-8 s) at high power."""
    t = np.round(np.arange(0, duration_s, 0.1), 3)
    cycle = np.where(t < 6, -1, np.where(t < 7, 0, 1))
    frames = []
    for d in range(n_devices):
        frames.append(pd.DataFrame({
            "t_s": t, "cycle": cycle, "gpu_index": d, "uuid": f"GPU-synthetic-{d}",
            "power_w": 60 + 200 * (t >= 6) + 5 * np.sin(t + d),
            "temperature_c": 40 + 2 * t + d,
            "sm_clock_mhz": 1400 + 0 * t,
        }))
    df = pd.concat(frames, ignore_index=True)
    df.to_parquet(path, index=False)
    return path


BACKEND_SHAPE = {"pytorch": (0.9, 600.0), "vllm": (0.5, 1500.0)}
BATCHES = (1, 2, 4, 8)


def make_study(root: Path, *, name: str = "synthetic-study", scale: float = 1.0, extra_jobs: bool = True,
               timeseries: bool = True) -> Path:
    """A study directory: synthetic measured jobs for 2 backends x 4 batches, plus (with
    ``extra_jobs``) the real unmeasured job, a failed job and a pending job with no result."""
    base = real_result()
    study_dir = root / name
    study_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    i = 0
    for backend, (j0, tps0) in BACKEND_SHAPE.items():
        for batch in BATCHES:
            jpt = scale * j0 / math.sqrt(batch)
            res = synthetic_result(base, backend=backend, batch=batch, j_per_token=jpt,
                                   tokens_per_s=tps0 * batch ** 0.7, seed=i, phases=(backend == "pytorch"))
            job_id = f"{i:04d}"
            job_dir = study_dir / job_id
            job_dir.mkdir(exist_ok=True)
            res.save(job_dir / "result.json")
            if timeseries and i == 0:
                write_timeseries(job_dir / "timeseries.parquet")
                res = res.model_copy(update={"timeseries_path": "timeseries.parquet"})
                res.save(job_dir / "result.json")
            st = res.stats["energy_per_output_token_j"]
            jobs.append(JobEntry(job_id=job_id, index=i, grid_index=i, overrides=[f"backend={backend}",
                                                                                  f"batch={batch}"],
                                 config_hash=res.config_hash, backend=backend, model=res.model,
                                 precision=res.precision, batch=batch, status="completed", job_dir=job_id,
                                 result_path=f"{job_id}/result.json",
                                 energy_per_output_token_j=res.energy.energy_per_output_token_j,
                                 energy_per_output_token_ci95=[st.ci95_low, st.ci95_high],
                                 output_tokens_per_s=res.output_tokens_per_s, energy_measured=True))
            i += 1
    if extra_jobs:
        job_id = f"{i:04d}"
        (study_dir / job_id).mkdir(exist_ok=True)
        base.save(study_dir / job_id / "result.json")
        jobs.append(JobEntry(job_id=job_id, index=i, grid_index=i, overrides=["backend=pytorch", "batch=2",
                                                                              "precision=fp32"],
                             config_hash=base.config_hash, backend=base.backend, model=base.model,
                             precision=base.precision, batch=base.batch, status="completed", job_dir=job_id,
                             result_path=f"{job_id}/result.json", energy_measured=False))
        i += 1
        jobs.append(JobEntry(job_id=f"{i:04d}", index=i, grid_index=i, overrides=["backend=vllm", "batch=64"],
                             config_hash=_hash("cfg", "vllm", 64), backend="vllm", model=base.model,
                             precision="fp16", batch=64, status="failed", job_dir=f"{i:04d}",
                             error_type="OutOfMemoryError", error_message="CUDA out of memory (synthetic)"))
        i += 1
        jobs.append(JobEntry(job_id=f"{i:04d}", index=i, grid_index=i, overrides=["backend=vllm", "batch=128"],
                             config_hash=_hash("cfg", "vllm", 128), backend="vllm", model=base.model,
                             precision="fp16", batch=128, status="pending"))
    study = StudyResult(study_name=name, study_design_hash=_hash("design", name), llem_version="0.1.0",
                        created_at="2026-01-01T00:00:00+00:00", updated_at="2026-01-01T01:00:00+00:00",
                        study_dir=str(study_dir), jobs=jobs,
                        summary={"note": SYNTHETIC_NOTE})
    study.save(study_dir)
    return study_dir


def write_real_job(root: Path) -> Path:
    """A single job directory holding the real (unmeasured) result."""
    d = root / "real-job"
    d.mkdir(parents=True, exist_ok=True)
    real_result().save(d / "result.json")
    return d


def write_measured_job(root: Path, name: str, *, j_per_token: float, seed: int = 0) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=j_per_token, tokens_per_s=900.0,
                     seed=seed).save(d / "result.json")
    return d


__all__ = ["make_study", "write_real_job", "write_measured_job", "synthetic_result", "real_result",
           "write_timeseries", "SYNTHETIC_NOTE", "write_json_atomic"]
