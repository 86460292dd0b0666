"""A search's trials as study jobs (llem/study/search_run.py), with a stand-in launcher and the
sampler played by the test: the manifest entry of every trial, what the sampler is told, the
confirmation jobs, search.json, and what a resume replays and runs again.

The stand-in launcher writes SYNTHETIC TEST DATA (tests/results/results_fixtures.py): a completed
result.json whose made-up energy falls with the batch, so the tests know which trial is best."""
from __future__ import annotations

import json

import pytest
from hydra.core.utils import JobReturn, JobStatus

from llem.results.manifest import StudyResult
from llem.study import search_run
from llem.study.plan import standalone_composer
from llem.study.search import SearchRecord, plan_search
from tests.results.results_fixtures import real_result, synthetic_result

SPACE = ["batch=choice(1,2,4,8)", "output_len=4"]
SWEEPER = {"n_trials": 4, "n_jobs": 1, "max_failure_rate": 0.0, "storage": None, "direction": "minimize",
           "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 0}, "params": None}


def j_per_token(batch: int, confirmation: bool) -> float:
    # made up: energy per token falls with the batch; a confirmation reads 10% higher
    return 0.8 / batch * (1.1 if confirmation else 1.0)


class FakeLauncher:
    """Runs a batch by writing each job's result.json (llem's launcher reports each job's start
    and end through the callbacks the searcher sets). ``fail``: job ids that fail."""

    def __init__(self, study_dir, fail=()):
        self.dir, self.fail = study_dir, set(fail)
        self.on_job_start = self.on_job_end = None
        self.cooldown_s = 0.0
        self.launched: list[str] = []

    def slots(self):
        return 1

    def launch(self, job_overrides, initial_job_idx):
        rets = []
        for k, ovr in enumerate(job_overrides):
            job_id = ovr[-1].split("=", 1)[1].strip("'")
            batch = int(next(o for o in ovr if o.startswith("batch=")).split("=")[1])
            self.launched.append(job_id)
            self.on_job_start(k, self.dir / job_id, None)
            (self.dir / job_id).mkdir(parents=True, exist_ok=True)
            r = synthetic_result(real_result(), backend="pytorch", batch=batch,
                                 j_per_token=j_per_token(batch, "_c" in job_id), tokens_per_s=100.0 * batch,
                                 seed=len(self.launched))
            if job_id in self.fail:
                r = r.model_copy(update={"status": "failed", "error_type": "OutOfMemoryError",
                                         "error_message": "simulated"})
            r.save(self.dir / job_id / "result.json")
            rets.append(JobReturn(status=JobStatus.COMPLETED, _return_value=0))
            self.on_job_end(k, rets[-1])
        return rets


def make_run(study_dir, *, confirm=0, resume=False, objectives=(), constraints=(), n_trials=4):
    with standalone_composer() as c:
        plan = plan_search(SPACE, c, {**SWEEPER, "n_trials": n_trials}, objectives=list(objectives),
                           constraints=list(constraints), confirm=confirm, given_hydra=[])
    return search_run.SearchRun(plan=plan, study_dir=study_dir, study_name="s", launcher_name="local", quiet=True,
                                resume=resume, command_args=["hydra/sweeper=optuna", *SPACE])


def run_search(run, launcher, batches, told=None):
    """The sampler's part: ask for ``batches`` (lists of batch values) in turn, keep what it is told."""
    told = [] if told is None else told

    def drive(searcher):
        for b in batches[: searcher.remaining()]:
            ovr = [f"batch={b}", "output_len=4"]
            rerun = searcher.take_rerun({"batch": str(b)}) if searcher.reruns else None
            told.extend(searcher.run_trials([(rerun, ovr)]))

    with standalone_composer() as c:
        return search_run.execute(run, launcher, c, None, drive), told


def test_every_trial_is_a_job_and_the_sampler_is_told_its_value(tmp_path):
    run = make_run(tmp_path, objectives=["energy_per_output_token_j", "output_tokens_per_s"])
    launcher = FakeLauncher(tmp_path, fail={"0002"})
    m, told = run_search(run, launcher, [1, 4, 8, 2])
    assert run.exit_code == 0 and run.error is None
    # every trial in the manifest like a grid job: status, config_hash, result path
    assert [(j.job_id, j.grid_index, j.cycle, j.status) for j in m.jobs] == [
        ("0000", 0, 0, "completed"), ("0001", 1, 0, "completed"), ("0002", 2, 0, "failed"), ("0003", 3, 0, "completed")]
    for j in m.jobs:
        assert len(j.config_hash) == 64 and j.result_path == f"{j.job_id}/result.json" and j.batch in (1, 2, 4, 8)
    assert m.search["objectives"] == ["energy_per_output_token_j", "output_tokens_per_s"] and m.finished_at
    assert StudyResult.load(tmp_path).model_dump() == m.model_dump()
    # the sampler is told each job's objectives, read from its result.json; the failed one gives none
    assert [t.job_id for t in told] == ["0000", "0001", "0002", "0003"]
    for t in told[:2] + told[3:]:
        res = json.loads((tmp_path / t.job_id / "result.json").read_text())
        assert t.outcome.feasible
        assert t.outcome.values["energy_per_output_token_j"].value == res["stats"]["energy_per_output_token_j"]["value"]
    assert not told[2].outcome.feasible and "OutOfMemoryError" in told[2].outcome.reason
    rec = SearchRecord.load(tmp_path)
    assert [t.state for t in rec.trials] == ["complete", "complete", "failed", "complete"]
    # several objectives: a front, every point of it undominated, best on the first objective
    # (batch 8 failed; of the rest, batch 4 has the least J/token and the most tok/s in the made-up data)
    assert [c.job_id for c in rec.pareto_front] == ["0001"] and rec.best.job_id == "0001"
    assert rec.best.params == {"batch": "4"} and rec.best.overrides == ["batch=4", "output_len=4"]


def test_confirm_measures_the_best_again_and_its_values_decide(tmp_path):
    run = make_run(tmp_path, confirm=2)
    launcher = FakeLauncher(tmp_path)
    m, _ = run_search(run, launcher, [1, 8, 8, 4])
    # batch 8 ran twice (two trials of one configuration): one candidate, then batch 4
    assert launcher.launched == ["0000", "0001", "0002", "0003", "0001_c1", "0003_c1"]
    c1 = next(j for j in m.jobs if j.job_id == "0001_c1")
    assert (c1.grid_index, c1.cycle, c1.status, c1.overrides) == (1, 1, "completed", ["batch=8", "output_len=4"])
    rec = SearchRecord.load(tmp_path)
    assert len(rec.trials) == 4 and [c.job_id for c in rec.candidates] == ["0001", "0003"]
    b = rec.best
    assert b.job_id == "0001" and b.values_from == "confirmation" and b.confirm_job_id == "0001_c1"
    confirmed = json.loads((tmp_path / "0001_c1/result.json").read_text())["stats"]["energy_per_output_token_j"]
    assert b.values["energy_per_output_token_j"].value == confirmed["value"]
    assert b.values["energy_per_output_token_j"].ci95_low == confirmed["ci95_low"]
    assert b.search_values["energy_per_output_token_j"].value < b.values["energy_per_output_token_j"].value


def test_a_constraint_no_trial_meets_names_nothing_and_exits_1(tmp_path):
    run = make_run(tmp_path, constraints=["output_tokens_per_s>=1e9"], n_trials=2)
    m, told = run_search(run, FakeLauncher(tmp_path), [1, 2])
    assert [j.status for j in m.jobs] == ["completed", "completed"]  # the jobs ran fine
    assert all(t.outcome.violations and t.outcome.reason is None for t in told)
    rec = SearchRecord.load(tmp_path)
    assert [t.state for t in rec.trials] == ["infeasible", "infeasible"] and rec.best is None
    assert run.exit_code == 1 and "met the constraints" in run.error


def test_resume_replays_finished_trials_and_runs_the_cut_short_one_again(tmp_path):
    run = make_run(tmp_path, n_trials=4)
    launcher = FakeLauncher(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        # the study is killed while trial 0002 runs: its job directory exists, no result.json
        def drive(searcher):
            searcher.run_trials([(None, ["batch=1", "output_len=4"])])
            searcher.run_trials([(None, ["batch=2", "output_len=4"])])
            e = searcher._entry(searcher._next_number(), 0, ["batch=4", "output_len=4"])
            e.status = "running"
            (tmp_path / e.job_id).mkdir()
            searcher.store.save()
            raise KeyboardInterrupt

        with standalone_composer() as c:
            s = search_run.Searcher(run, launcher, c)
            s.open()
            drive(s)
    # a SIGKILL leaves the manifest as it was while 0002 ran
    before = {p: (tmp_path / p / "result.json").read_bytes() for p in ("0000", "0001")}
    run2 = make_run(tmp_path, n_trials=4, resume=True)
    with standalone_composer() as c:
        s2 = search_run.Searcher(run2, launcher, c)
        s2.open()
    assert [t.job_id for t in s2.history()] == ["0000", "0001"]  # replayed to the sampler
    assert [e.job_id for e in s2.reruns] == ["0002"] and s2.rerun_params() == [{"batch": "4"}]
    assert s2.remaining() == 2
    assert (tmp_path / ".attempts/0002.1").is_dir()  # the cut-short attempt kept aside
    launcher.launched.clear()
    m, told = run_search(make_run(tmp_path, n_trials=4, resume=True), launcher, [4, 8])
    assert launcher.launched == ["0002", "0003"]  # nothing finished ran again
    assert [(j.job_id, j.status) for j in m.jobs] == [("0000", "completed"), ("0001", "completed"),
                                                     ("0002", "completed"), ("0003", "completed")]
    assert all((tmp_path / p / "result.json").read_bytes() == b for p, b in before.items())
    assert SearchRecord.load(tmp_path).best.params == {"batch": "8"}


def test_a_search_stopped_by_ctrl_c_records_the_running_trial_and_names_nothing_yet(tmp_path):
    run = make_run(tmp_path, n_trials=4)
    launcher = FakeLauncher(tmp_path)

    def drive(searcher):
        searcher.run_trials([(None, ["batch=8", "output_len=4"])])
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) between two trials

    with standalone_composer() as c:
        m = search_run.execute(run, launcher, c, None, drive)
    assert run.exit_code == 130 and run.interrupted and m.finished_at is None
    rec = SearchRecord.load(tmp_path)
    assert [t.state for t in rec.trials] == ["complete"] and rec.best is None and rec.finished_at is None
