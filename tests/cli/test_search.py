"""``llem run -m hydra/sweeper=optuna``, as a user types it: a real Optuna search over batch and
output length on the built-in tiny model, with energy from the simulated NVML (a test double for
a GPU's counter), killed and resumed; and bad input refused before anything is written."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import psutil
import pytest

from llem.results.manifest import StudyResult
from llem.study.search import SearchRecord, dominates
from tests.conftest import FAST, LLEM, run_llem
from tests.devices.sim import gpu, use_sim

SEARCH = ["-m", "hydra/sweeper=optuna"]


# --- bad input: exit 2, one line naming the field, the value and what is allowed, nothing written ---

CASES = [
    ("objective-not-a-metric", ["batch=choice(1,2)", "--objective", "joules"],
     ["--objective=joules", "not a metric", "allowed: energy_per_output_token_j"]),
    ("objective-is-a-config-key", ["batch=choice(1,2)", "--objective=batch"], ["--objective=batch", "not a metric"]),
    ("constraint-unknown-metric", ["batch=choice(1,2)", "--constraint", "tokens_per_second>=1000"],
     ["--constraint=tokens_per_second>=1000", "tokens_per_second is not a metric", "allowed: energy_per_output_token_j"]),
    ("constraint-malformed", ["batch=choice(1,2)", "--constraint", "output_tokens_per_s=1000"],
     ["--constraint=output_tokens_per_s=1000", "allowed: METRIC>=NUMBER or METRIC<=NUMBER"]),
    ("empty-space", ["batch=8", "output_len=16"],
     ["the search space is empty (batch=8 output_len=16)", "allowed: at least one swept key"]),
    ("empty-space-no-overrides", [], ["the search space is empty", "allowed: at least one swept key"]),
    ("bad-value-in-space", ["batch=choice(1,0)"], ["search space batch=0", "batch=0"]),
    ("confirm-negative", ["batch=choice(1,2)", "--confirm", "-1"], ["--confirm=-1", "allowed: an integer >= 0"]),
    ("storage", ["batch=choice(1,2)", "hydra.sweeper.storage=sqlite:///x.db"],
     ["hydra.sweeper.storage=sqlite:///x.db", "allowed: null"]),
    ("n_trials-zero", ["batch=choice(1,2)", "hydra.sweeper.n_trials=0"],
     ["hydra.sweeper.n_trials=0", "allowed: an integer >= 1"]),
    ("direction-against-objective", ["batch=choice(1,2)", "hydra.sweeper.direction=maximize"],
     ["hydra.sweeper.direction=maximize", "allowed: minimize"]),
]
MODES = {"search": lambda a: ["run", *SEARCH, *a], "dry-run": lambda a: ["run", *SEARCH, "--dry-run", *a]}
# the cases the issue names run in both modes; the rest as a search only (each case costs a process)
BOTH = {"objective-not-a-metric", "constraint-unknown-metric", "empty-space"}


@pytest.mark.parametrize("mode, case, args, needles",
                         [("search", *c) for c in CASES] + [("dry-run", *c) for c in CASES if c[0] in BOTH])
def test_bad_search_input_exits_2_with_one_line_and_writes_nothing(tmp_path, mode, case, args, needles):
    r = run_llem(MODES[mode](args), cwd=tmp_path)
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith("llem: error: "), err
    for n in needles:
        assert n in err, (n, err)
    assert r.stdout == ""
    assert list(tmp_path.rglob("*")) == []


def test_search_flags_without_a_search_are_refused(tmp_path):
    for args in (["run", "-m", "batch=1,2", "--objective", "output_tokens_per_s"], ["run", "--confirm", "2"]):
        r = run_llem(args, cwd=tmp_path)
        assert r.returncode == 2 and "hydra/sweeper=optuna" in r.stderr, r.stderr
        assert list(tmp_path.rglob("*")) == []


def test_dry_run_shows_the_space_and_the_configs_checked(tmp_path):
    r = run_llem(["run", *SEARCH, "--dry-run", "batch=choice(1,4)", "output_len=range(8,32,8)",
                  "--objective", "energy_per_output_token_j,output_tokens_per_s", "--constraint", "itl_ms_p99<=50"],
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "a search of 20 trials" in out and "output_tokens_per_s (maximize)" in out and "itl_ms_p99<=50" in out
    # every choice and both ends of the range (Optuna proposes the stop too) were composed and checked
    for checked in ("batch=1 output_len=8", "batch=4 output_len=8", "batch=1 output_len=32"):
        assert checked in out, out
    assert list(tmp_path.rglob("*")) == []


# --- a real search, killed and resumed ----------------------------------------------------------

def _manifest(d):
    try:
        return json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _job_running(proc, study, job_id, timeout_s=600):
    """The job process of ``job_id`` once the search has started it (waits for a state, not a time)."""
    parent = psutil.Process(proc.pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        assert proc.poll() is None, "the search ended before the job started: " + proc.stderr.read()[-3000:]
        m = _manifest(study)
        if m and any(j["job_id"] == job_id and j["status"] == "running" for j in m["jobs"]):
            kids = [p for p in parent.children(recursive=True)
                    if "hydra_plugins.llem_plugins._child" in " ".join(p.cmdline())]
            if kids:
                return kids[0]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never started")


@pytest.mark.slow
def test_a_search_of_8_trials_killed_and_resumed(tmp_path, monkeypatch):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_w=150.0, counter_period_ms=20)])
    study = tmp_path / "search"
    objectives = ["energy_per_output_token_j", "output_tokens_per_s"]
    args = [*SEARCH, "hydra.sweeper.n_trials=8", "hydra.sweeper.sampler.seed=0", "batch=choice(1,2,4)",
            "output_len=choice(2,4,8)", *[a for a in FAST if not a.startswith("output_len")], "energy=nvml",
            "energy.baseline.enabled=false", "measurement.quantisation_target=0.5", "measurement.phase_split=false",
            f"hydra.sweep.dir={study}", "--objective", ",".join(objectives)]
    proc = subprocess.Popen([LLEM, "run", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = _job_running(proc, study, "0002")
    proc.send_signal(signal.SIGKILL)  # no chance to record anything: as a node failure or the OOM killer would
    proc.wait(60)
    psutil.wait_procs([job], timeout=60)  # the job dies with its study
    killed = _manifest(study)
    assert [(j["job_id"], j["status"]) for j in killed["jobs"]] == [("0000", "completed"), ("0001", "completed"),
                                                                   ("0002", "running")]
    done = {j: ((study / j / "result.json").read_bytes(), (study / j / "result.json").stat().st_mtime_ns)
            for j in ("0000", "0001")}

    r = run_llem(["run", "--resume", str(study)], cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    m = StudyResult.load(study)
    # every trial is a job of the manifest, like a grid's: 8 of them, each with its result
    assert m.search["objectives"] == objectives and m.finished_at
    assert [j.job_id for j in m.jobs] == [f"{k:04d}" for k in range(8)]
    for j in m.jobs:
        assert j.status == "completed" and j.cycle == 0 and len(j.config_hash) == 64
        assert j.result_path == f"{j.job_id}/result.json" and (study / j.result_path).is_file()
        assert j.batch in (1, 2, 4) and j.energy_measured
    # the finished trials were not run again; the one the kill cut short ran again under its id
    for j, (data, mtime) in done.items():
        assert (study / j / "result.json").read_bytes() == data
        assert (study / j / "result.json").stat().st_mtime_ns == mtime
    assert (study / ".attempts/0002.1").is_dir()
    assert m.jobs[2].overrides == killed["jobs"][2]["overrides"]
    # search.json: every trial, the best configuration and the Pareto front, each value with its CI
    rec = SearchRecord.load(study)
    assert len(rec.trials) == 8 and all(t.state == "complete" for t in rec.trials)
    for t in rec.trials:
        res = json.loads((study / t.result_path).read_text())
        assert t.values["energy_per_output_token_j"].value == res["energy"]["energy_per_output_token_j"]
    front = rec.pareto_front
    assert front and rec.best is not None and rec.best.job_id == front[0].job_id
    # each configuration counts once (a sampler may propose a configuration twice), by its trial
    # best on the first objective; a tie goes to the better on the second, then to the earlier
    # trial. Ties are common here: the simulated counter publishes in 20 ms steps of 3 J, so two
    # trials of one configuration often measure exactly the same J/token
    signs = [1 if d == "minimize" else -1 for d in rec.spec.directions]

    def rank_key(t):
        return (*(s * t.values[m_].value for m_, s in zip(objectives, signs)), t.number)

    reps = {}
    for t in sorted(rec.trials, key=rank_key):
        reps.setdefault(t.config_hash, t)
    assert {c.job_id for c in front} <= {t.job_id for t in reps.values()}
    for c in front:
        for m_ in objectives:
            v = c.values[m_]
            assert v.ci95_low <= v.value <= v.ci95_high
        assert not any(dominates(t.values, c.values, rec.spec) for t in reps.values())
        # nor by a repeat of its own configuration
        assert not any(dominates(t.values, c.values, rec.spec) for t in rec.trials if t.config_hash == c.config_hash)
    on_front = {c.config_hash for c in front}
    for t in reps.values():
        if t.config_hash not in on_front:
            assert any(dominates(c.values, t.values, rec.spec) for c in front), t.job_id
    # what the sampler held after the resume: hydra-optuna-sweeper's own front, of all 8 trials
    import yaml

    opt = yaml.safe_load((study / "optimization_results.yaml").read_text())
    front_params = [{k: int(v) for k, v in c.params.items()} for c in front]
    assert opt["solutions"] and all(s["params"] in front_params for s in opt["solutions"])
    # printed at the end: the front with the CIs, and where search.json is
    assert "Pareto front" in r.stdout and f"best: {rec.best.job_id}" in r.stdout and "search.json" in r.stdout
    # the results tools read a search like a grid
    show = run_llem(["results", "show", str(study)], cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert all(f"{k:04d}" in show.stdout for k in range(8))
    # a second resume has nothing to do
    again = run_llem(["run", "--resume", str(study)], cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_a_search_without_the_plugin_installed_says_what_to_install(monkeypatch):
    from llem.cli import study
    from llem.errors import ConfigError

    monkeypatch.setattr(study, "search_plugin_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"needs hydra-optuna-sweeper.*llenergymeasure\[search\]") as e:
        study.plan_from_args(["hydra/sweeper=optuna", "batch=choice(1,2)"], config_dir=None, config_name="config")
    assert e.value.field == "hydra/sweeper" and e.value.value == "optuna"


def test_an_interval_on_an_integer_key_is_refused_before_the_search(tmp_path):
    # hydra-optuna-sweeper samples interval(1,256) as floats: batch=106.6 would fail every trial
    r = run_llem(["run", *SEARCH, "batch=interval(1,256)"], cwd=tmp_path)
    assert r.returncode == 2 and "valid integer" in r.stderr and "use range(start,stop,step) or choice" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and list(tmp_path.rglob("*")) == []
