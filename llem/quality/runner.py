"""``run_quality``: the evaluation the harness runs after the measured cycles (docs/quality.md).

Order, per job: the measured cycles, latency and phase passes are over; then, on the same backend
object, each task is evaluated by lm-eval's ``simple_evaluate`` with meter windows around its model
calls (``metering.py``); the sampler runs beside them and its rows inside those windows are tagged
with the phase ``quality``. A task that fails is recorded as failed and the next one runs; nothing
here can fail the job or touch the inference numbers already measured.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable, Optional

from llem.quality.stats import energy_uncertainty, quality_per_joule
from llem.result import QualityEnergy, QualityMetric, QualityResult, QualityTaskResult

log = logging.getLogger("llem")

_RESULT_KEYS = ("alias", "name", "sample_len", " ", "samples")


def run_quality(config, backend, meter, baseline, sampler, t0: float, *, job_dir=None,
                say: Optional[Callable[[str], None]] = None, stats: Optional[dict] = None,
                energy=None) -> Optional[QualityResult]:
    """Evaluate ``config.quality.tasks`` on ``backend``; None when quality is off. Never raises
    (except KeyboardInterrupt and friends): a failure is returned as a failed ``QualityResult``."""
    q = config.quality
    if not q.enabled:
        return None
    say = say or log.info
    t_start = time.perf_counter()
    out = QualityResult(status="failed")
    out.meaningless, out.meaningless_reason = _meaningless(config)
    ept = (stats or {}).get("energy_per_output_token_j")
    if energy is not None and getattr(energy, "measured", False):
        # the headline estimator (Stat.value, the ratio of totals) and the interval of that value
        out.energy_per_output_token_j = (ept.value if ept is not None and ept.value is not None
                                         else energy.energy_per_output_token_j)
        if ept is not None:
            out.energy_per_output_token_j_ci95_low, out.energy_per_output_token_j_ci95_high = ept.ci95_low, ept.ci95_high
    try:
        _evaluate(config, backend, meter, baseline, sampler, t0, job_dir, say, ept, out)
    except Exception as err:  # the quality part fails; the measurement already taken stands
        out.status, out.error_type, out.error_message = "failed", type(err).__name__, str(err)[:2000]
        log.warning("quality evaluation failed: %s: %s", type(err).__name__, err)
    out.duration_s = time.perf_counter() - t_start
    return out


def _meaningless(config) -> tuple[bool, Optional[str]]:
    from llem.config.quality_options import RANDOM_WEIGHT_SOURCES

    if config.model.source in RANDOM_WEIGHT_SOURCES:
        return True, (f"model.source={config.model.source}: random weights (quality.allow_random_weights=true); "
                      "every score measures chance, not the model")
    return False, None


def _evaluate(config, backend, meter, baseline, sampler, t0, job_dir, say, ept, out: QualityResult) -> None:
    from llem.quality.quiet import quiet_lm_eval, silenced

    quiet_lm_eval()
    import importlib.metadata

    import lm_eval

    from llem.quality.adapters import decoding_settings, make_adapter
    from llem.quality.metering import Recorder, instrument
    from llem.config.quality_tasks import SHIPPED_DIR, resolve_tasks

    q = config.quality
    out.lm_eval_version = importlib.metadata.version("lm_eval")
    refs = resolve_tasks(list(q.tasks), list(q.include_path))
    batch_size = q.batch_size or config.batch
    adapter = make_adapter(backend, config, batch_size)
    out.evaluated_object = adapter.evaluated
    out.notes.extend(adapter.notes)
    measured_decoding, decoding_notes = decoding_settings(config)
    gen_kwargs = {**measured_decoding, **q.gen_kwargs}
    out.notes.extend(decoding_notes)
    out.decoding = {"gen_kwargs": gen_kwargs, "from_measured_engine": measured_decoding,
                    "overridden_by_quality_gen_kwargs": sorted(q.gen_kwargs),
                    "applies_to": "generation tasks (generate_until); loglikelihood tasks score given answers"}
    if q.gen_kwargs:
        out.notes.append(f"quality.gen_kwargs changed the decoding of generation tasks from the measured engine's: "
                         f"{', '.join(sorted(q.gen_kwargs))}")
    needs_registry = any(r.source == "lm-eval" for r in refs)
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=[str(SHIPPED_DIR), *(str(Path(p).expanduser()) for p in q.include_path)],
                     include_defaults=needs_registry)
    recorder = instrument(adapter.lm, meter, backend.synchronize, Recorder())
    seed = config.seed
    common = dict(num_fewshot=q.num_fewshot, limit=q.limit, bootstrap_iters=q.bootstrap_iters, log_samples=True,
                  apply_chat_template=q.apply_chat_template, gen_kwargs=gen_kwargs or None, random_seed=seed,
                  numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
    out.lm_eval_arguments = {**{k: v for k, v in common.items() if k != "log_samples"},
                             "log_samples": q.log_samples, "batch_size": batch_size,
                             "model": out.evaluated_object.get("adapter"),
                             "tasks": [r.describe() for r in refs],
                             "task_manager": {"include_path": [str(SHIPPED_DIR), *q.include_path],
                                              "include_defaults": needs_registry}}
    edge_s = meter.edge_uncertainty_s()
    spans: list[tuple[float, float]] = []
    sampler.start()
    try:
        for ref in refs:
            recorder.reset()
            tokens_before = adapter.generated_tokens()
            say(f"quality: evaluating {ref.name} ({_size(ref, q.limit)})")
            t = time.perf_counter()
            tr = QualityTaskResult(task=ref.name, source=ref.source, kind=ref.kind, output_type=ref.output_type)
            try:
                with silenced():
                    res = lm_eval.simple_evaluate(model=adapter.lm, tasks=[_spec(ref)], task_manager=tm, **common)
                _fill_task(tr, res, ref.name)
                if q.log_samples and job_dir is not None:
                    tr.samples_path = _write_samples(Path(job_dir), ref.name, res.get("samples") or {})
            except Exception as err:
                tr.status, tr.error_type, tr.error_message = "failed", type(err).__name__, str(err)[:2000]
                log.warning("quality task %s failed: %s: %s", ref.name, type(err).__name__, err)
            tr.duration_s = time.perf_counter() - t
            tr.requests = recorder.requests()
            spans += [(w.reading.start_time - t0, w.reading.end_time - t0) for w in recorder.windows]
            tr.energy = _task_energy(recorder, meter, baseline, edge_s, tr.samples,
                                     adapter.generated_tokens() - tokens_before, ept)
            if tr.status == "completed":
                _fill_qpj(tr, ept)
            say(_line(tr))
            out.tasks.append(tr)
    finally:
        sampler.stop()
        if hasattr(sampler, "tag_phase"):
            sampler.tag_phase("quality", spans)
    done = sum(t.status == "completed" for t in out.tasks)
    out.status = "completed" if done == len(out.tasks) else ("partial" if done else "failed")
    if out.status == "failed" and out.tasks:
        first = out.tasks[0]
        out.error_type, out.error_message = first.error_type, f"every task failed; {first.task}: {first.error_message}"


def _size(ref, limit) -> str:
    n = ref.n_docs
    if n is not None and limit is not None:
        n = min(n, limit)
    what = f"{n} samples" if n is not None else (f"up to {limit} samples" if limit else "all samples")
    return f"{what}, {ref.output_type or ref.kind}"


def _spec(ref):
    """What lm-eval loads: local task YAML as a config dict with its data files made absolute (lm-eval
    would read relative paths from the working directory); lm-eval's own tasks by name."""
    if ref.source == "lm-eval" or ref.kind != "task":
        return ref.name
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(ref.yaml_path, resolve_func=True)
    if ref.data_files:
        files = (cfg.get("dataset_kwargs") or {}).get("data_files")
        cfg.setdefault("dataset_kwargs", {})["data_files"] = (
            {k: str(v) for k, v in ref.data_files.items()} if isinstance(files, dict) else str(next(iter(ref.data_files.values()))))
    return cfg


def _num(v) -> Optional[float]:
    if v is None or isinstance(v, str):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _fill_task(tr: QualityTaskResult, res: dict, name: str) -> None:
    if not res or name not in res.get("results", {}):
        raise RuntimeError(f"lm-eval returned no results for {name}")
    r = res["results"][name]
    hib = (res.get("higher_is_better") or {}).get(name) or {}
    for key, v in r.items():
        if key in _RESULT_KEYS or "," not in key or "_stderr," in key:
            continue
        metric, filt = key.split(",", 1)
        raw_se = r.get(f"{metric}_stderr,{filt}")
        se = _num(raw_se)
        tr.metrics.append(QualityMetric(
            name=key, value=_num(v), stderr=se, higher_is_better=hib.get(metric),
            stderr_reason=None if se is not None else (
                "lm-eval gave no stderr (N/A: quality.bootstrap_iters=0, or no closed form for this metric)")))
    cfg = (res.get("configs") or {}).get(name) or {}
    tr.primary_metric = _primary(cfg, [m.name for m in tr.metrics])
    tr.output_type = cfg.get("output_type") or tr.output_type
    tr.version = (res.get("versions") or {}).get(name)
    tr.num_fewshot = (res.get("n-shot") or {}).get(name)
    ns = res.get("n-samples") or {}
    if name in ns:
        tr.samples, tr.samples_total = int(ns[name]["effective"]), int(ns[name]["original"])
    else:  # a group: the sum over its tasks
        tr.samples = sum(int(v["effective"]) for v in ns.values())
        tr.samples_total = sum(int(v["original"]) for v in ns.values())
    samples = res.get("samples") or {}
    tr.task_hash = _task_hash(samples)
    if tr.output_type == "multiple_choice" and samples.get(name):
        s = samples[name]
        tr.chance_accuracy = sum(1 / max(1, len(x.get("arguments") or [1])) for x in s) / len(s)


def _primary(cfg: dict, keys: list[str]) -> Optional[str]:
    """lm-eval's convention: the first metric of the task's metric_list, under its first filter."""
    metrics = [m.get("metric") for m in cfg.get("metric_list") or [] if isinstance(m, dict)]
    filters = [f.get("name") for f in cfg.get("filter_list") or [] if isinstance(f, dict)] or ["none"]
    for m in metrics:
        for f in filters:
            if f"{m},{f}" in keys:
                return f"{m},{f}"
    return keys[0] if keys else None


def _task_hash(samples: dict) -> Optional[str]:
    """lm-eval's task hash (what its EvaluationTracker writes): a hash over every sample's document,
    prompt and target hashes. Several tasks (a group): each task's hash, combined in name order."""
    if not samples:
        return None
    from lm_eval.utils import hash_string

    per = {t: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in ss))
           for t, ss in samples.items()}
    return per[next(iter(per))] if len(per) == 1 else hash_string("".join(per[t] for t in sorted(per)))


def _write_samples(job_dir: Path, task: str, samples: dict) -> str:
    from llem.result import write_atomic

    name = f"quality_samples_{task}.jsonl"
    lines = [json.dumps({"task": t, **s}, default=str) for t, ss in samples.items() for s in ss]
    write_atomic(job_dir / name, "\n".join(lines) + "\n")
    return name


def _task_energy(recorder, meter, baseline, edge_s, samples: int, generated: int, ept) -> QualityEnergy:
    from llem.meters.base import NoMeter

    wins = recorder.windows
    dur = recorder.duration_s
    e = QualityEnergy(measured=False, meter=meter.name, estimated=bool(getattr(meter, "estimated", False)),
                      windows=len(wins), duration_s=dur)
    e.per_window = [{"request_type": w.request_type, "requests": w.requests, "duration_s": w.reading.duration_s,
                     "energy_j": w.reading.energy_j} for w in wins]
    gen_wins = [w for w in wins if w.request_type == "generate_until"]
    if gen_wins:
        e.generated_tokens = int(generated)
    else:
        e.per_token_reason = ("loglikelihood task: the model scores the given answers and generates no tokens, "
                              "so there is no energy per generated token")
    if not wins:
        e.not_measured_reason = "the evaluation made no model call"
        return e
    if isinstance(meter, NoMeter) or any(w.reading.energy_j is None for w in wins):
        e.not_measured_reason = getattr(meter, "reason", None) or "the meter returned no energy for the evaluation's windows"
        return e
    e.measured = True
    e.energy_j = sum(w.reading.energy_j for w in wins)
    if edge_s and dur > 0:
        e.quantisation_bound = edge_s * len(wins) / dur
    base = baseline.total_power_w if baseline is not None else None
    if base is not None:
        e.baseline_power_w = base
        e.energy_adjusted_j = e.energy_j - base * dur
    else:
        e.energy_adjusted_reason = "no idle baseline for this job (see measurement_methodology.baseline)"
    if samples:
        e.energy_per_sample_j = e.energy_j / samples
        if e.energy_adjusted_j is not None:
            e.energy_adjusted_per_sample_j = e.energy_adjusted_j / samples
    if gen_wins:
        gen_e = sum(w.reading.energy_j for w in gen_wins)
        if generated:
            e.energy_per_generated_token_j = gen_e / generated
        else:
            e.per_token_reason = "the generation requests produced no tokens"
    u = energy_uncertainty(getattr(ept, "cv", None), e.quantisation_bound, getattr(ept, "n", None))
    e.uncertainty = u.describe()
    return e


def _fill_qpj(tr: QualityTaskResult, ept) -> None:
    m = tr.primary()
    if m is None:
        tr.quality_per_joule_reason = "no primary metric"
        return
    e = tr.energy
    reason = None if e.measured else e.not_measured_reason
    rel = e.uncertainty.get("relative_sd") if e.measured else None
    if e.measured and rel is None:
        reason = e.uncertainty.get("reason")
    r = quality_per_joule(m.name, m.value, m.stderr, tr.samples, e.energy_j, rel, reason,
                          cycle_cv=e.uncertainty.get("cycle_cv"), cycles=e.uncertainty.get("cycles"))
    tr.quality_per_joule, tr.quality_per_joule_ci95_low, tr.quality_per_joule_ci95_high = r.value, r.ci95_low, r.ci95_high
    tr.quality_per_joule_method, tr.quality_per_joule_reason = r.method, r.reason
    if r.value is not None and e.energy_adjusted_j is not None and e.energy_adjusted_j > 0 and m.value is not None:
        tr.quality_per_joule_adjusted = m.value * tr.samples / e.energy_adjusted_j


def _line(tr: QualityTaskResult) -> str:
    if tr.status != "completed":
        return f"quality: {tr.task} failed: {tr.error_type}: {tr.error_message}"
    m = tr.primary()
    s = f"quality: {tr.task} {m.name.split(',')[0]} {m.value:.4g}" if m and m.value is not None else f"quality: {tr.task}"
    if m is not None and m.stderr is not None:
        s += f" ± {m.stderr:.2g}"
    s += f" over {tr.samples} samples"
    e = tr.energy
    if e is not None and e.measured:
        s += f", {e.energy_j:.4g} J" + (" (estimated)" if e.estimated else "")
    if tr.quality_per_joule is not None:
        s += f", {tr.quality_per_joule:.4g} correct/J"
    return s
