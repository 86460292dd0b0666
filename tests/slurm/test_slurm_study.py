"""Studies through a real Slurm cluster (scripts/slurm-loopback.sh start; CI starts it).

Each test runs ``llem run -m hydra/launcher=slurm ...`` as a user types it. The loopback cluster
has no GPUs, so every sweep sets ``hydra.launcher.gpus_per_node=null`` (a GPU request would be
refused at once by sbatch).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from llem.environment.cluster import sacct_facts
from llem.result import ExperimentResult
from llem.results.manifest import StudyResult
from tests.conftest import FAST, LLEM, REPO, run_llem

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SCRIPT = REPO / "scripts" / "slurm-loopback.sh"


@pytest.fixture(scope="module")
def cluster() -> dict:
    """The cluster's node and default partition; skip without one (fail under CI)."""
    ready = shutil.which("sbatch") is not None and shutil.which("sacct") is not None and \
        subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True).returncode == 0
    if not ready:
        msg = "no Slurm cluster with accounting here: run `scripts/slurm-loopback.sh start` as root"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    parts = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout.split()
    default = next((p.rstrip("*") for p in parts if p.endswith("*")), parts[0])
    return {"node": socket.gethostname().split(".")[0], "partition": default}


@pytest.fixture
def job_name():
    """A name for this test's Slurm jobs, so none can outlive the test."""
    name = f"llemtest-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], capture_output=True)


def _slurm(job_name: str, *extra: str) -> list[str]:
    return ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=null", f"hydra.launcher.name={job_name}", *extra]


def _our_jobs(job_name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", f"--name={job_name}", "-o", "%i %T"], capture_output=True, text=True)
    return out.stdout.split("\n") if out.stdout.strip() else []


def _final_state(job_id: str, limit_s: float = 30.0) -> dict:
    """sacct's record once the job has ended: the job's result file comes back a moment
    before Slurm finishes the job's batch script."""
    deadline = time.monotonic() + limit_s
    facts = sacct_facts(job_id)
    while facts.get("state") in (None, "RUNNING", "COMPLETING", "PENDING") and time.monotonic() < deadline:
        time.sleep(0.5)
        facts = sacct_facts(job_id)
    return facts


def _no_jobs_left(job_name: str, limit_s: float = 30.0) -> bool:
    deadline = time.monotonic() + limit_s
    while _our_jobs(job_name) and time.monotonic() < deadline:
        time.sleep(0.5)
    return _our_jobs(job_name) == []


def test_sweep_through_slurm_is_the_same_study_as_local(tmp_path, cluster, job_name):
    grid = ["batch=1,2", *FAST]
    local = run_llem(["run", "-m", f"hydra.sweep.dir={tmp_path / 'local'}", *grid], cwd=tmp_path, timeout=300)
    assert local.returncode == 0, local.stderr[-3000:]
    t0 = time.monotonic()
    # the whole grid as one job array, as on a real cluster; the preset's --exclusive stays on
    slurm = run_llem(["run", "-m", *_slurm(job_name, "hydra.sweeper.max_batch_size=null"),
                      f"hydra.sweep.dir={tmp_path / 'slurm'}", *grid], cwd=tmp_path, timeout=300)
    sweep_s = time.monotonic() - t0
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    print(f"2-job Slurm sweep: {sweep_s:.1f} s")

    ml, ms = StudyResult.load(tmp_path / "local"), StudyResult.load(tmp_path / "slurm")
    assert ms.launcher == "slurm" and ml.launcher == "local"
    assert ms.study_design_hash == ml.study_design_hash
    assert [(e.job_id, e.config_hash, e.overrides, e.status) for e in ms.jobs] == \
           [(e.job_id, e.config_hash, e.overrides, e.status) for e in ml.jobs]
    assert {e.status for e in ms.jobs} == {"completed"}
    raw_l = json.loads((tmp_path / "local" / "manifest.json").read_text())
    raw_s = json.loads((tmp_path / "slurm" / "manifest.json").read_text())
    assert raw_s.keys() == raw_l.keys() and raw_s["jobs"][0].keys() == raw_l["jobs"][0].keys()

    array_ids, task_ids = set(), set()
    for el, es in zip(ml.jobs, ms.jobs):
        rl = ExperimentResult.load(tmp_path / "local" / el.result_path)
        rs = ExperimentResult.load(tmp_path / "slurm" / es.result_path)
        assert rs.status == rl.status == "completed"
        assert rs.config_hash == rl.config_hash
        assert rs.model_dump().keys() == rl.model_dump().keys()
        assert rs.output_tokens == rl.output_tokens > 0
        # the environment says where the job ran: nothing outside Slurm, the allocation inside
        assert rl.environment["slurm"] == {}
        facts = rs.environment["slurm"]
        assert facts["node_name"] == cluster["node"]
        assert facts["partition"] == cluster["partition"]
        assert isinstance(facts["job_id"], int)
        array_ids.add(facts["array_job_id"])
        task_ids.add(facts["array_task_id"])
        # and Slurm's accounting knows that job as the one that completed on that node
        acct = _final_state(str(facts["job_id"]))
        assert acct["state"] == "COMPLETED" and acct["node_name"] == facts["node_name"]
        assert acct["array_job"] == facts["array_job"]
        # the job's Slurm output sits in its own job directory, where the manifest points
        assert es.log_path == f"{es.job_dir}/job.log"
        assert f"Slurm job {facts['array_job']}" in (tmp_path / "slurm" / es.log_path).read_text()
    # and nothing in the directory llem was started from (logs of studies would mix there)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "slurm"]
    assert len(array_ids) == 1 and None not in array_ids
    assert task_ids == {0, 1}
    assert _no_jobs_left(job_name)


STALL = """#!/bin/bash
# Runs before each job (hydra.launcher.setup). The first job to find a token takes it and
# stalls: the "cancel" one until the test cancels it, the "timeout" one until Slurm's time
# limit, which it first lowers to zero for itself (the other jobs keep theirs): Slurm then
# ends it at its next time-limit check (slurmctld checks every 30 s) as TIMEOUT, instead of a
# minute after it started (the shortest limit sbatch takes).
me=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
me=${me:-$SLURM_JOB_ID}
for kind in cancel timeout; do
  if mv "TOKENS/$kind" "TOKENS/taken-$kind-$me" 2>/dev/null; then
    [ "$kind" = timeout ] && scontrol update JobId="$SLURM_JOB_ID" TimeLimit=0
    sleep 600
  fi
done
"""


def _taken(tokens: Path, kind: str) -> str | None:
    found = sorted(tokens.glob(f"taken-{kind}-*"))
    return found[0].name.split("-", 2)[2] if found else None


def test_cancelled_and_time_limited_jobs_fail_the_rest_complete_and_resume_reruns_them(tmp_path, cluster, job_name):
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "cancel").touch()
    (tokens / "timeout").touch()
    stall = tmp_path / "stall.sh"
    stall.write_text(STALL.replace("TOKENS", str(tokens)))
    study = tmp_path / "study"
    # without --exclusive and with one CPU each, two jobs share the 2-CPU node: the stalled
    # ones do not hold up the others for the whole time limit
    args = ["run", "-m", *_slurm(job_name, "~hydra.launcher.additional_parameters.exclusive",
                                 "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10",
                                 "hydra.sweeper.max_batch_size=null", f"hydra.launcher.setup=['bash {stall}']"),
            f"hydra.sweep.dir={study}", "batch=1,2,3,4", *FAST]
    t0 = time.monotonic()
    proc = subprocess.Popen([LLEM, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        cancelled = None
        deadline = time.monotonic() + 180
        while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
            cancelled = _taken(tokens, "cancel")
            time.sleep(0.5)
        assert cancelled, "no job took the cancel token"
        subprocess.run(["scancel", cancelled], check=True)
        # "the launcher does not hang": the study ends on its own, well before the jobs' limits
        out, err = proc.communicate(timeout=420)
    except BaseException:
        proc.kill()
        raise
    sweep_s = time.monotonic() - t0
    print(f"4-job Slurm sweep with a cancelled and a timed-out job: {sweep_s:.1f} s")
    timed_out = _taken(tokens, "timeout")
    assert timed_out, "no job took the timeout token"
    assert proc.returncode == 1, err[-3000:]
    assert _no_jobs_left(job_name)

    m = StudyResult.load(study)
    by_status: dict[str, list] = {}
    for e in m.jobs:
        by_status.setdefault(e.status, []).append(e)
    assert len(by_status.get("completed", [])) == 2, ([(e.job_id, e.status, e.error_message) for e in m.jobs], err[-3000:])
    failed = {e.error_type: e for e in by_status.get("failed", [])}
    assert set(failed) == {"SlurmCancelled", "SlurmTimeLimit"}, ([(e.job_id, e.status, e.error_type) for e in m.jobs], err[-3000:])
    assert m.summary["failed"] == 2 and m.summary["completed"] == 2
    # each failure is a failed result.json that names the Slurm job and its end state
    for kind, slurm_id, error_type, state in (("cancel", cancelled, "SlurmCancelled", "CANCELLED"),
                                              ("timeout", timed_out, "SlurmTimeLimit", "TIMEOUT")):
        e = failed[error_type]
        r = ExperimentResult.load(study / e.result_path)
        assert r.status == "failed" and r.error_type == error_type
        assert r.environment["slurm"]["array_job"] == slurm_id
        assert r.environment["slurm"]["state"].startswith(state)
        assert r.environment["slurm"]["node_name"] == cluster["node"]
        assert slurm_id in r.error_message and state in r.error_message
        assert r.config_hash == e.config_hash
        if kind == "cancel":  # the limit it was submitted with (hydra.launcher.timeout_min=10), from sacct
            assert r.environment["slurm"]["time_limit"] == "00:10:00"
        # the manifest's log is the Slurm job's own output, brought beside the result
        assert f"Slurm job {slurm_id}" in (study / e.log_path).read_text()
    old_ids = {cancelled, timed_out}

    # --resume reruns exactly the two failed jobs, through Slurm again (the tokens are gone)
    t1 = time.monotonic()
    res = run_llem(["run", "--resume", str(study)], cwd=tmp_path, timeout=420)
    resume_s = time.monotonic() - t1
    print(f"resume of 2 jobs through Slurm: {resume_s:.1f} s")
    assert res.returncode == 0, res.stderr[-3000:]
    m2 = StudyResult.load(study)
    assert [e.status for e in m2.jobs] == ["completed"] * 4
    assert m2.launcher == "slurm"
    for err_type, e in failed.items():
        e2 = next(x for x in m2.jobs if x.job_id == e.job_id)
        r2 = ExperimentResult.load(study / e2.result_path)
        assert r2.status == "completed" and r2.config_hash == e.config_hash
        facts = r2.environment["slurm"]
        assert facts["array_job"] not in old_ids and isinstance(facts["job_id"], int)
        assert _final_state(facts["array_job"])["state"] == "COMPLETED"
    # the jobs that had completed were not run again
    for e in by_status["completed"]:
        e2 = next(x for x in m2.jobs if x.job_id == e.job_id)
        assert e2.ended_at == e.ended_at
    assert _no_jobs_left(job_name)


def _job_output(study: Path, slurm_id: str) -> str:
    """The job's output so far, as submitit writes it under the study (stdout and stderr)."""
    folder = study / ".submitit" / slurm_id
    return "".join(p.read_text(errors="replace") for p in sorted(folder.glob(f"{slurm_id}_*_log.*")))


def _wait_for(what: str, check, proc, limit_s: float = 300.0):
    """``check()``'s first truthy answer (waits for a state, not a time)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        assert proc.poll() is None, f"the study ended before {what}: " + proc.stderr.read()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {limit_s:.0f} s")


def test_job_running_python_past_its_time_limit_is_a_slurm_time_limit_with_slurms_state(tmp_path, cluster, job_name):
    """The job is inside llem (warm-up) when Slurm's time-limit warning and then its limit come,
    not in a setup script; its warm-up lasts at least 600 s whatever the machine's speed. The
    job starts with a 10-minute limit, which the test lowers while it runs, each step once the
    job's output shows the state it waits for: to one minute once llem runs, so that Slurm's
    warning (due from then on, sent at slurmctld's next time-limit check) reaches llem's handler
    and not a process still starting; then to zero once llem has logged the warning, so that
    Slurm ends the job at its next check (every 30 s) instead of a minute after it started."""
    study = tmp_path / "study"
    args = ["run", "-m", *_slurm(job_name, "~hydra.launcher.additional_parameters.exclusive",
                                 "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10"),
            f"hydra.sweep.dir={study}", "measurement.cycles=2", "dataset.num_prompts=2", "output_len=4",
            "measurement.warmup_runs=2", "measurement.warmup_min_s=600"]
    proc = subprocess.Popen([LLEM, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        running = _wait_for("running Slurm job", lambda: [j for j in _our_jobs(job_name) if j.endswith(" RUNNING")],
                            proc)
        job_id = running[0].split()[0]
        _wait_for("llem in the job", lambda: "[llem][INFO] - loading" in _job_output(study, job_id), proc)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=1"], check=True)
        _wait_for("time-limit warning", lambda: "time-limit warning" in _job_output(study, job_id), proc)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=0"], check=True)
        out, err = proc.communicate(timeout=300)
    except BaseException:
        proc.kill()
        raise
    assert proc.returncode == 1, err[-3000:]
    assert _no_jobs_left(job_name)
    e = StudyResult.load(study).jobs[0]
    assert (e.status, e.error_type) == ("failed", "SlurmTimeLimit"), (e.error_type, e.error_message, err[-3000:])
    res = ExperimentResult.load(study / e.result_path)
    slurm = res.environment["slurm"]
    assert res.error_type == "SlurmTimeLimit" and slurm["state"].startswith("TIMEOUT")
    assert slurm["node_name"] == cluster["node"]
    # a one-job sweep is a plain Slurm job, not an array
    slurm_id = slurm.get("array_job") or str(slurm["job_id"])
    assert slurm_id == job_id
    assert "TIMEOUT" in res.error_message and f"Slurm job {slurm_id} " in res.error_message
    # the job's own output, in its job directory, and nothing in the directory llem ran from
    assert e.log_path == "0000/job.log"
    log_text = (study / e.log_path).read_text()
    assert f"Slurm job {slurm_id}:" in log_text and "time-limit warning" in log_text
    # llem ignored the warning: the job was still in its warm-up when Slurm ended it, no result came back
    assert "measuring" not in log_text and "Job not requeued" not in log_text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]
