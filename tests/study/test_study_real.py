"""Real local studies on CPU with the tiny model: failures, SIGKILL, Ctrl-C, resume.

Each job is a real subprocess running the real harness; the manifest is checked after each
event, and against a rebuild from the job directories.
"""
import json
import signal
import subprocess
import time

import psutil
import pytest

from llem.results.manifest import StudyResult
from llem.study.manifest import rebuild
from tests.study.conftest import TINY, llem_cmd, run_llem

pytestmark = pytest.mark.slow


def _manifest(d):
    p = d / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _wait_for_job_process(study_proc, study_dir, job_id, timeout=300):
    """The job process of ``job_id`` once the study has started it."""
    parent = psutil.Process(study_proc.pid)
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert study_proc.poll() is None, "the study ended before the job started"
        m = _manifest(study_dir)
        if m and next(j for j in m["jobs"] if j["job_id"] == job_id)["status"] == "running":
            kids = [p for p in parent.children(recursive=True)
                    if "hydra_plugins.llem_plugins._child" in " ".join(p.cmdline())]
            if kids and (study_dir / job_id / ".llem_payload.pkl").exists():
                return kids[0]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never started")


def _statuses(m):
    return {j["job_id"]: j["status"] for j in m["jobs"]}


def test_a_failed_and_a_killed_job_do_not_stop_the_study(workdir):
    study = workdir / "study"
    proc = subprocess.Popen(
        llem_cmd("-m", "++pytorch.extra_generate_kwargs={},{renormalize_logits:true},{bogus_kwarg:1}", *TINY,
                 f"hydra.sweep.dir={study}"),
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # before the first job runs, every planned job is in the manifest, pending or running
    job1 = _wait_for_job_process(proc, study, "0001")
    m = _manifest(study)
    assert _statuses(m) == {"0000": "completed", "0001": "running", "0002": "pending"}
    job1.send_signal(signal.SIGKILL)  # as the OOM killer would
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    m = _manifest(study)
    st = _statuses(m)
    assert st == {"0000": "completed", "0001": "lost", "0002": "failed"}
    j1, j2 = m["jobs"][1], m["jobs"][2]
    assert j1["error_type"] == "JobKilled" and "SIGKILL" in j1["error_message"] and j1["result_path"] is None
    assert not (study / "0001/result.json").exists()
    assert j2["error_type"] == "ValueError" and "bogus_kwarg" in j2["error_message"]
    assert j2["result_path"] == "0002/result.json" and (study / j2["log_path"]).is_file()
    assert m["summary"]["failed_jobs"] == ["0001", "0002"] and m["finished_at"]
    assert m["jobs"][0]["output_tokens_per_s"] > 0
    # the summary names the failures
    assert "failures:" in out and "0001" in out.split("failures:")[1] and "0002" in out.split("failures:")[1]
    # progress went to stderr
    assert "[1/3 done, 0 failed, 2 left" in err and "0001 lost: JobKilled" in err
    # the manifest is what the job directories say
    rebuilt = rebuild(study, save=False)
    assert {j.job_id: j.status for j in rebuilt.jobs} == st


def test_ctrl_c_then_resume(workdir):
    study = workdir / "study"
    # A shell that starts a command in the background makes it ignore SIGINT, and Python keeps an
    # inherited SIG_IGN: give the study the default disposition, as a terminal's Ctrl-C finds it.
    proc = subprocess.Popen(llem_cmd("-m", "batch=1,2", *TINY, f"hydra.sweep.dir={study}"),
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    job1 = _wait_for_job_process(proc, study, "0001")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    # the running job was stopped, not orphaned
    assert not job1.is_running() or job1.status() == psutil.STATUS_ZOMBIE
    m = _manifest(study)
    assert _statuses(m) == {"0000": "completed", "0001": "failed"}
    assert m["jobs"][1]["error_type"] == "Interrupted" and m["finished_at"] is None
    assert f"llem run --resume {study}" in err
    first = (study / "0000/result.json").read_bytes()
    first_mtime = (study / "0000/result.json").stat().st_mtime_ns

    r = run_llem("--resume", str(study), "--quiet", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""  # --quiet
    m2 = StudyResult.load(study)
    assert [j.status for j in m2.jobs] == ["completed", "completed"]
    assert m2.finished_at and m2.study_design_hash == m["study_design_hash"]
    # the completed job was not rerun: its result is byte-identical
    assert (study / "0000/result.json").read_bytes() == first
    assert (study / "0000/result.json").stat().st_mtime_ns == first_mtime
    assert m2.jobs[1].result_path == "0001/result.json" and m2.jobs[1].batch == 2
    # the interrupted attempt was kept aside, not deleted
    assert (study / ".attempts/0001.1").is_dir()
    # nothing left to do: a second resume runs nothing and succeeds
    r = run_llem("--resume", str(study), cwd=workdir)
    assert r.returncode == 0 and "2 completed, 0 failed" in r.stdout


def test_run_study_library_parallel_gpus(workdir, monkeypatch):
    from llem import StudyConfig, run_study

    # two "GPUs": each job must get its own one, and they run side by side
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    study = StudyConfig(name="lib", base={"output_len": 4, "device": "cpu", "dataset": {"num_prompts": 2},
                                          "measurement": {"cycles": 2, "warmup_runs": 0, "min_window_s": 0},
                                          "energy": {"baseline": {"enabled": False}}},
                        sweep={"batch": [1, 2]}, output_dir=str(workdir / "lib"), parallel_gpus=True)
    res = run_study(study)
    assert isinstance(res, StudyResult) and res.study_name == "lib"
    assert [j.status for j in res.jobs] == ["completed", "completed"]
    assert sorted(j.gpu for j in res.jobs) == ["0", "1"]
    a, b = res.jobs
    assert a.started_at <= b.ended_at and b.started_at <= a.ended_at  # overlapped
    for j in res.jobs:
        assert f"CUDA_VISIBLE_DEVICES={j.gpu}" in (workdir / "lib" / j.log_path).read_text()
    assert StudyResult.load(workdir / "lib").jobs[0].status == "completed"


def test_timeout_is_a_failed_job_with_a_result(workdir):
    from llem import StudyConfig, run_study

    study = StudyConfig(name="t", base={"output_len": 4, "measurement": {"cycles": 2, "warmup_runs": 0, "min_window_s": 0}},
                        sweep={"dataset.num_prompts": [2]}, overrides=["hydra.launcher.timeout_s=0.5"],
                        output_dir=str(workdir / "t"))
    res = run_study(study)
    j = res.jobs[0]
    assert j.status == "failed" and j.error_type == "JobTimeout" and "0.5 s" in j.error_message
    assert json.loads((workdir / "t/0000/result.json").read_text())["error_type"] == "JobTimeout"
    assert not [p for p in psutil.Process().children(recursive=True) if "_child" in " ".join(p.cmdline())]


def test_study_process_killed_its_job_dies_and_shows_lost(workdir):
    study = workdir / "study"
    proc = subprocess.Popen(llem_cmd("-m", "batch=1", *TINY, f"hydra.sweep.dir={study}"),
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job = _wait_for_job_process(proc, study, "0000")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # the job does not run on unseen (it would hold the GPU and write into a dir a resume reuses)
    psutil.wait_procs([job], timeout=30)
    assert not job.is_running()
    m = rebuild(study, save=False)
    assert m.jobs[0].status == "lost" and m.jobs[0].error_type == "Lost"
