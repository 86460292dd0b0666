"""The quality part of a job, end to end on the tiny model (random weights, allowed and labelled),
with the simulated NVML standing in for a GPU's counters (a test double: no GPU here). lm-eval,
the model and the harness are real."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from llem.config.compose import load_config
from llem.measure import harness
from tests.conftest import FAST
from tests.devices.sim import gpu, use_sim
from tests.quality.conftest import write_mc_task

pytestmark = pytest.mark.slow
Q = ["quality=lm_eval", "quality.allow_random_weights=true", "quality.limit=8", "batch=4"]


def _cfg(tmp_path, *extra):
    return load_config([*FAST, "energy=nvml", "energy.baseline.duration_s=0.1",
                        f"energy.baseline.cache_dir={tmp_path / 'cache'}", "measurement.quantisation_target=0.05",
                        *Q, *extra])


@pytest.fixture
def loads(monkeypatch):
    """Every model object the PyTorch backend loads in this test, by id."""
    from llem.backends.pytorch import PyTorchBackend

    seen = []
    orig = PyTorchBackend.load

    def load(self):
        orig(self)
        seen.append(id(self.model))

    monkeypatch.setattr(PyTorchBackend, "load", load)
    return seen


def test_quality_on_the_measured_model_in_its_own_windows(monkeypatch, tmp_path, loads, capsys):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=150.0, counter_period_ms=20)])
    from llem.measure.sampler import Sampler

    spans: list = []
    tag = Sampler.tag_phase

    def record(self, phase, given):
        spans.extend(given)
        return tag(self, phase, given)

    monkeypatch.setattr(Sampler, "tag_phase", record)
    r = harness.run(_cfg(tmp_path, "quality.tasks=[llem_easy_mc,llem_easy_gen]"), tmp_path / "job")
    q = r.quality
    assert r.status == "completed" and r.energy.measured and q.status == "completed"
    # the very object that was measured, loaded once
    assert len(loads) == 1 and q.evaluated_object["object_id"] == loads[0]
    assert q.evaluated_object["same_object_as_measured"] is True and "HFLM" in q.evaluated_object["adapter"]
    assert q.lm_eval_version == "0.4.13" and q.lm_eval_arguments["limit"] == 8
    assert q.lm_eval_arguments["bootstrap_iters"] == 1000 and q.decoding["gen_kwargs"] == {"do_sample": False}
    assert q.meaningless and "random weights" in q.meaningless_reason
    assert q.energy_per_output_token_j == pytest.approx(r.energy.energy_per_output_token_j)
    mc, gen = q.tasks
    assert (mc.task, mc.output_type, mc.samples, mc.samples_total) == ("llem_easy_mc", "multiple_choice", 8, 157)
    assert mc.requests == {"loglikelihood": 32} and mc.chance_accuracy == pytest.approx(0.25)
    assert mc.primary_metric == "acc,none" and mc.task_hash and mc.version == 1.0
    acc = mc.primary()
    assert 0.0 <= acc.value <= 1.0 and acc.stderr is not None and acc.higher_is_better is True
    for t in (mc, gen):
        e = t.energy
        assert e.measured and e.meter == "nvml" and e.windows == len(e.per_window) >= 1
        assert e.energy_j == pytest.approx(sum(w["energy_j"] for w in e.per_window))
        assert e.energy_j == pytest.approx(150.0 * e.duration_s, abs=150.0 * 0.02 * e.windows + 0.01)
        assert e.energy_adjusted_j == pytest.approx(e.energy_j - e.baseline_power_w * e.duration_s)
        assert e.quantisation_bound == pytest.approx(0.02 * e.windows / e.duration_s, rel=0.3)
        assert e.energy_per_sample_j == pytest.approx(e.energy_j / t.samples)
        assert e.uncertainty["relative_sd"] is not None and e.uncertainty["cycles"] == 2
    # loglikelihood generates nothing: no per-token figure, with the reason
    assert mc.energy.generated_tokens is None and mc.energy.energy_per_generated_token_j is None
    assert "generates no tokens" in mc.energy.per_token_reason
    assert gen.energy.generated_tokens > 0
    assert gen.energy.energy_per_generated_token_j == pytest.approx(gen.energy.energy_j / gen.energy.generated_tokens)
    # quality_per_joule: correct answers per joule, with its interval around it
    assert mc.quality_per_joule == pytest.approx(acc.value * mc.samples / mc.energy.energy_j)
    if acc.value > 0:
        assert mc.quality_per_joule_ci95_low < mc.quality_per_joule < mc.quality_per_joule_ci95_high
    # after every measured window: the evaluation's windows start after the measured span closed
    # (the spans handed to the sampler; a window shorter than the sampling interval may hold no sample)
    assert spans and min(a for a, _ in spans) > r.measurement_methodology["measured_span_s"][1]
    ts = pd.read_parquet(tmp_path / "job" / r.timeseries_path)
    inside = ts["t_s"].apply(lambda t: any(a <= t <= b for a, b in spans))
    assert (ts.loc[inside, "phase"] == "quality").all() and ts.loc[~inside, "phase"].isna().all()
    assert (ts.loc[inside, "cycle"] == -1).all()
    assert set(ts.loc[ts["cycle"] >= 0, "phase"].dropna()) == set()
    saved = json.loads(r.to_json())
    from llem.result import SCHEMA_VERSION

    assert saved["schema_version"] == SCHEMA_VERSION and saved["quality"]["tasks"][0]["task"] == "llem_easy_mc"
    # the summary printed after a run says it too
    from llem.cli.summary import print_summary

    capsys.readouterr()
    print_summary(r)
    out = capsys.readouterr().out
    assert "quality (completed, lm-eval 0.4.13) [MEANINGLESS: random weights]:" in out
    from llem.results.fmt import fmt_num

    assert f"llem_easy_mc: acc {fmt_num(acc.value)} ± " in out and "(chance 0.25)" in out and "quality_per_joule" in out


def test_a_task_failing_at_run_time_fails_only_the_quality_part(monkeypatch, tmp_path, task_dir):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=150.0, counter_period_ms=20)])
    # the prompt template names a field the data does not have: lm-eval fails while building requests
    write_mc_task(task_dir, "broken_mc", text="{{no_such_field.upper()}}")
    r = harness.run(_cfg(tmp_path, f"quality.include_path=[{task_dir}]", "quality.tasks=[broken_mc,llem_easy_mc]"),
                    tmp_path / "job")
    assert r.status == "completed" and r.energy.measured and r.energy.energy_j > 0 and len(r.cycles) == 2
    assert r.stats["energy_per_output_token_j"].value is not None
    broken, ok = r.quality.tasks
    assert r.quality.status == "partial"
    assert broken.status == "failed" and broken.error_type and broken.error_message
    assert broken.quality_per_joule is None and ok.status == "completed" and ok.quality_per_joule is not None


def test_quality_failure_before_any_task_is_recorded_and_the_job_completes(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=150.0, counter_period_ms=20)])
    import llem.quality.adapters as adapters

    def broken(*a, **k):
        raise RuntimeError("adapter exploded")

    monkeypatch.setattr(adapters, "make_adapter", broken)
    r = harness.run(_cfg(tmp_path, "quality.tasks=[llem_easy_mc]"), tmp_path / "job")
    assert r.status == "completed" and r.energy.measured
    assert r.quality.status == "failed" and r.quality.error_type == "RuntimeError"
    assert "adapter exploded" in r.quality.error_message


def test_without_a_meter_the_evaluation_energy_is_missing_with_its_reason(tmp_path):
    r = harness.run(load_config([*FAST, "energy=none", *Q, "quality.tasks=[llem_easy_mc]", "quality.log_samples=true"]),
                    tmp_path / "job")
    t = r.quality.tasks[0]
    assert t.status == "completed" and t.primary().value is not None
    assert not t.energy.measured and t.energy.energy_j is None and "energy=none" in t.energy.not_measured_reason
    assert t.quality_per_joule is None and "energy=none" in t.quality_per_joule_reason
    # log_samples: every evaluated sample, one JSON object a line
    lines = (tmp_path / "job" / t.samples_path).read_text().splitlines()
    assert len(lines) == 8 and {"doc", "target", "resps"} <= set(json.loads(lines[0]))


def test_quality_none_evaluates_nothing(tmp_path):
    r = harness.run(load_config([*FAST, "energy=none"]), tmp_path / "job")
    assert r.quality is None and r.config["quality"]["kind"] == "none"
