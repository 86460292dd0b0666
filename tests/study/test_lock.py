"""One process per study: the OS lock on <study>/.study.lock.

Two ``llem run --resume`` of one study started at the same moment both ran every remaining
job (the "still running" check read the manifest before either wrote its owner). The lock is
taken before that check and held for the study's life."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from llem.study.lock import LOCK_NAME, StudyBusyError, StudyLock, held_elsewhere, held_here
from tests.study.conftest import TINY, llem_cmd, run_llem


def _fake_study(d):
    """A study directory as a finished one-job study leaves it (nothing to run on resume)."""
    from llem.config.compose import load_config
    from llem.results.manifest import JobEntry, StudyResult

    cfg = load_config(["output_len=4"])
    d.mkdir(parents=True, exist_ok=True)
    StudyResult(study_name="s", study_design_hash="d", llem_version="0", created_at="t", updated_at="t",
                study_dir=str(d), command_args=["-m", "batch=1"],
                jobs=[JobEntry(job_id="0000", index=0, grid_index=0, overrides=["batch=1"], config_hash=cfg.config_hash,
                               backend="pytorch", model="tiny-llama", precision="fp32", batch=1, job_dir="0000")]
                ).save(d)
    return d


_HOLDER = textwrap.dedent("""
    import sys, time
    from llem.study.lock import StudyLock
    lock = StudyLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    sys.stdin.read()  # hold it until the test closes stdin (or kills us)
""")


def _holder(study_dir):
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(study_dir)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_resume_while_another_process_holds_the_study_exits_2_naming_it(tmp_path):
    study = _fake_study(tmp_path / "study")
    holder = _holder(study)
    try:
        r = run_llem("--resume", str(study), cwd=tmp_path, timeout=120)
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("llem: error: --resume") and f"pid {holder.pid}" in lines[0]
    assert "only one process may run a study" in lines[0]
    # the refused process changed nothing
    assert json.loads((study / "manifest.json").read_text())["updated_at"] == "t"


def test_the_lock_goes_with_its_process_even_on_sigkill(tmp_path):
    holder = _holder(tmp_path)
    assert held_elsewhere(tmp_path)
    with pytest.raises(StudyBusyError, match=f"pid {holder.pid}"):
        StudyLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    assert not held_elsewhere(tmp_path)
    with StudyLock(tmp_path) as lock:  # no stale lock to clean up by hand
        assert lock.locked and held_here(tmp_path) and not held_elsewhere(tmp_path)
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"]
    assert not held_here(tmp_path)


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    outer = StudyLock(tmp_path).acquire()
    inner = StudyLock(tmp_path).acquire()  # the engine takes it again under the CLI's
    inner.release()
    assert held_here(tmp_path)
    outer.release()
    assert not held_here(tmp_path)


def test_a_fresh_study_into_a_locked_directory_exits_2(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    holder = _holder(study)
    try:
        r = run_llem("-m", "batch=1", *TINY, f"hydra.sweep.dir={study}", cwd=tmp_path, timeout=120)
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert r.returncode == 2 and f"pid {holder.pid}" in r.stderr, r.stderr
    assert sorted(p.name for p in study.iterdir()) == [LOCK_NAME]


_WAIT_FOR_GO = """#!/bin/sh
# stands in for the job's Python: records that a job started, then waits for the test
echo $$ >> "{ran}"
while [ ! -e "{go}" ]; do sleep 0.05; done
exit 3
"""


def _wait_any(procs, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        done = [p for p in procs if p.poll() is not None]
        if done:
            return done[0]
        time.sleep(0.05)
    return None


@pytest.mark.slow
def test_two_resumes_started_together_twenty_times_exactly_one_runs(tmp_path):
    """The job of whichever resume wins waits until the other has exited, so the two always
    overlap, however fast or slow this machine is: the loser must be refused, never run."""
    ran, go = tmp_path / "ran", tmp_path / "go"
    job = tmp_path / "job.sh"
    job.write_text(_WAIT_FOR_GO.format(ran=ran, go=go))
    job.chmod(0o755)
    study = tmp_path / "study"
    go.touch()
    r = run_llem("-m", "batch=1", *TINY, f"hydra.sweep.dir={study}", f"hydra.launcher.python={job}", "-q",
                 cwd=tmp_path, timeout=300)
    assert r.returncode == 1, r.stderr  # its one job "crashed" (exit 3): the study is there to resume
    for i in range(20):
        go.unlink()
        ran.write_text("")
        args = llem_cmd("--resume", str(study), f"hydra.launcher.python={job}", "-q")
        procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        first = _wait_any(procs, timeout=180)  # only a refused resume can end before go exists
        go.touch()
        outs = [p.communicate(timeout=300) for p in procs]
        rcs = [p.returncode for p in procs]
        runners = ran.read_text().split()
        assert len(runners) == 1, f"round {i}: {len(runners)} resumes ran the job (exit codes {rcs})"
        assert first is not None and first.returncode == 2, f"round {i}: exit codes {rcs}"
        loser = procs.index(first)
        winner = procs[1 - loser]
        assert winner.returncode == 1, outs[1 - loser][1]  # it ran the job, which exited 3
        err = outs[loser][1].strip().splitlines()
        assert len(err) == 1 and f"pid {winner.pid}" in err[0], outs[loser][1]
    m = json.loads((study / "manifest.json").read_text())
    assert m["jobs"][0]["status"] == "lost" and m["jobs"][0]["error_type"] == "JobCrashed"
    assert len(list((study / ".attempts").iterdir())) == 20  # one attempt per round, none doubled
