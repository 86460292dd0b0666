"""I/O failures: an unwritable output directory (single run and study), an unwritable manifest,
a disk that fills during a study. Each gives one line and an exit code, leaves manifest.json a
whole valid file that records the job's state, and ``--resume`` finishes once the cause is gone.

The in-process tests inject ``OSError`` into the atomic writer; the real ones use a read-only
bind mount (root) or directory permissions (others), and a small tmpfs that fills (root only).
"""
import errno
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from llem import fsio
from llem.study import engine
from llem.results.manifest import StudyResult
from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer
from tests.study.conftest import TINY, CallbackLauncher, run_llem


@pytest.fixture(scope="module")
def plan3():
    with standalone_composer() as c:
        return plan_grid(["batch=1,2,3", "output_len=4"], c, ExecutionOptions())


def _failing_manifest_writes(monkeypatch, fail_on, err_no=errno.ENOSPC):
    """manifest.json writes number ``fail_on`` (1-based, a set or a predicate) raise OSError."""
    real = fsio.write_text_atomic
    count = [0]

    def write(path, text):
        if Path(path).name == "manifest.json":
            count[0] += 1
            if (fail_on(count[0]) if callable(fail_on) else count[0] in fail_on):
                raise OSError(err_no, os.strerror(err_no), str(path))
        return real(path, text)

    monkeypatch.setattr(fsio, "write_text_atomic", write)
    return count


def _run(study_dir, plan, resume=False):
    run = engine.StudyRun(plan=plan, study_dir=study_dir, study_name="s", launcher_name="local", quiet=True,
                          resume=resume)
    launcher = CallbackLauncher(study_dir, plan)
    engine.execute(run, launcher)
    return run, launcher


def test_disk_full_at_a_manifest_save_stops_the_study_records_it_and_resume_finishes(tmp_path, plan3, monkeypatch):
    # saves: 1 the start, 2 job 0000 starts, 3 job 0000 ended <- the disk is full here
    writes = _failing_manifest_writes(monkeypatch, {3})
    run, launcher = _run(tmp_path, plan3)
    assert launcher.launched == ["0000"], "the study must stop, not run its other jobs into a full disk"
    assert launcher.reserve_seen[0] >= engine.RESERVE_MIN_BYTES  # room kept for the last save
    assert run.exit_code == 1
    assert run.error.startswith(f"cannot write {tmp_path}/manifest.json (No space left on device)")
    assert f"llem run --resume {tmp_path}" in run.error and "\n" not in run.error
    # the manifest is whole and records the job's state: the last save (after the reserve was
    # freed) went through
    m = StudyResult.load(tmp_path / "manifest.json")
    assert [j.status for j in m.jobs] == ["completed", "pending", "pending"] and m.finished_at is None
    assert not (tmp_path / engine.RESERVE_NAME).exists()
    assert not list(tmp_path.glob(".manifest.json.*.tmp"))
    done = (tmp_path / "0000/result.json").read_bytes()
    assert writes[0] == 4  # the failed save, then the last one
    # the cause is gone: --resume runs the rest and leaves the completed job alone
    monkeypatch.undo()
    run2, launcher2 = _run(tmp_path, plan3, resume=True)
    assert launcher2.launched == ["0001", "0002"] and run2.exit_code == 0 and run2.error is None
    assert [j.status for j in StudyResult.load(tmp_path / "manifest.json").jobs] == ["completed"] * 3
    assert (tmp_path / "0000/result.json").read_bytes() == done


def test_a_manifest_that_stays_unwritable_keeps_its_last_whole_version(tmp_path, plan3, monkeypatch):
    _failing_manifest_writes(monkeypatch, lambda n: n >= 3, errno.EACCES)
    run, launcher = _run(tmp_path, plan3)
    assert launcher.launched == ["0000"] and run.exit_code == 1
    assert "(Permission denied)" in run.error and "still shows the state before the failure" in run.error
    m = StudyResult.load(tmp_path / "manifest.json")  # valid: the save of job 0000's start
    assert [j.status for j in m.jobs] == ["running", "pending", "pending"]
    # what the manifest could not record, the job directory did; a rebuild (as --resume does) reads it
    from llem.study.manifest import rebuild

    assert [j.status for j in rebuild(tmp_path, save=False).jobs] == ["completed", "pending", "pending"]


def test_an_unwritable_manifest_at_the_start_runs_nothing(tmp_path, plan3, monkeypatch):
    _failing_manifest_writes(monkeypatch, lambda n: True, errno.EACCES)
    run, launcher = _run(tmp_path, plan3)
    assert launcher.launched == [] and run.exit_code == 1 and "Permission denied" in run.error
    assert (tmp_path / "plan.json").is_file()  # what a rebuild needs was written before


def test_stale_temporaries_of_a_killed_writer_are_removed_by_the_next_run(tmp_path, plan3):
    run, _ = _run(tmp_path, plan3)
    assert run.exit_code == 0
    stale = [tmp_path / ".manifest.json.k1ll3d.tmp", tmp_path / ".plan.json.k1ll3d.tmp",
             tmp_path / engine.RESERVE_NAME]
    for p in stale:
        p.write_text("half a file")
    other = tmp_path / ".notes.tmp"
    other.write_text("not ours")
    shutil.rmtree(tmp_path / "0002")  # something left to resume
    run2, launcher = _run(tmp_path, plan3, resume=True)
    assert launcher.launched == ["0002"] and run2.exit_code == 0
    assert [p.name for p in stale if p.exists()] == [] and other.exists()


# --- real processes ---------------------------------------------------------------------------

@contextmanager
def read_only(path: Path):
    """``path`` read-only: a read-only bind mount as root (permissions do not stop root),
    else the directory's write permission removed."""
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {r.stderr.strip()}")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


def _one_line_error(r, code):
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("llem: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_single_run_into_an_unwritable_directory_exits_2_with_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        r = run_llem(*TINY, f"hydra.run.dir={ro}/run1", cwd=tmp_path, timeout=120)
    line = _one_line_error(r, 2)
    assert f"hydra.run.dir={ro}/run1" in line and "cannot write" in line
    assert list(ro.iterdir()) == []


def test_study_into_an_unwritable_directory_exits_2_with_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        r = run_llem("-m", "batch=1,2", *TINY, f"hydra.sweep.dir={ro}/study", cwd=tmp_path, timeout=120)
        r2 = run_llem("-m", "batch=1,2", *TINY, f"hydra.sweep.dir={ro}", cwd=tmp_path, timeout=120)
    assert f"hydra.sweep.dir={ro}/study" in _one_line_error(r, 2)
    assert f"hydra.sweep.dir={ro}" in _one_line_error(r2, 2)
    assert list(ro.iterdir()) == []


def test_single_run_whose_result_cannot_be_written_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """A disk that fills while a single run measures: the result.json write fails."""
    import llem.runners.jobs
    from llem.cli.run import run_command

    def full(config, job_dir=None, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(job_dir) / "result.json"))

    monkeypatch.setattr(llem.runners.jobs, "execute_job", full)
    monkeypatch.chdir(tmp_path)
    assert run_command([*TINY, f"hydra.run.dir={tmp_path}/run1", "--quiet"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("llem: error:")]
    assert err == [f"llem: error: cannot write {tmp_path}/run1/result.json (No space left on device); "
                   "the measurement is lost: free space or fix the permission and run again"]


_FAIL_FAST = "#!/bin/sh\nexit 3\n"


@pytest.mark.slow
def test_resume_of_a_study_made_read_only_exits_2_then_finishes_once_writable(tmp_path):
    study = tmp_path / "study"
    fail = tmp_path / "fail.sh"
    fail.write_text(_FAIL_FAST)
    fail.chmod(0o755)
    # a study whose one job died (exit 3): there is something to resume
    r = run_llem("-m", "batch=1", *TINY, f"hydra.sweep.dir={study}", f"hydra.launcher.python={fail}", "-q",
                 cwd=tmp_path, timeout=300)
    assert r.returncode == 1, r.stderr
    before = (study / "manifest.json").read_bytes()
    (study / ".manifest.json.dead.tmp").write_text("left by a killed writer")
    with read_only(study):
        r = run_llem("--resume", str(study), "-q", cwd=tmp_path, timeout=300)
    line = _one_line_error(r, 2)
    assert f"--resume {study}: cannot write" in line
    assert (study / "manifest.json").read_bytes() == before
    # writable again (and the job's real Python instead of the failing stand-in)
    r = run_llem("--resume", str(study), f"hydra.launcher.python={sys.executable}", "-q", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    m = StudyResult.load(study / "manifest.json")
    assert [j.status for j in m.jobs] == ["completed"]
    assert not (study / ".manifest.json.dead.tmp").exists()


_FILL_AFTER_FIRST_JOB = """#!{python}
# Stands in for the job's Python: runs the real job (the same process, so the launcher's checks
# hold), and as the first job's process exits, fills the disk. It also removes the two small
# files the study process would delete before its next manifest save (the job's payload and
# return files; result.json tells how the job went), so that save meets a disk with no space.
import atexit, errno, os, runpy, sys

payload = sys.argv[3]


def fill():
    if os.path.exists("{flag}"):
        return
    open("{flag}", "w").close()
    job_dir = os.path.dirname(payload)
    for name in (".llem_payload.pkl", ".llem_return.pkl"):
        try:
            os.unlink(os.path.join(job_dir, name))
        except FileNotFoundError:
            pass
    with open("{fill}", "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(4096))
        except OSError as err:
            assert err.errno == errno.ENOSPC, err


atexit.register(fill)
sys.argv = [sys.argv[2], payload]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_disk_filling_during_a_real_study(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        study, fill, flag = disk / "study", disk / "fill", tmp_path / "filled"
        job = tmp_path / "job.sh"
        job.write_text(_FILL_AFTER_FIRST_JOB.format(python=sys.executable, flag=flag, fill=fill))
        job.chmod(0o755)
        r = run_llem("-m", "batch=1,2", *TINY, f"hydra.sweep.dir={study}", f"hydra.launcher.python={job}", "-q",
                     cwd=tmp_path, timeout=600)
        line = _one_line_error(r, 1)
        assert "manifest.json (No space left on device)" in line and f"llem run --resume {study}" in line
        assert flag.exists()
        m = StudyResult.load(study / "manifest.json")  # whole and valid
        assert [j.status for j in m.jobs] == ["completed", "pending"]  # the job's state is recorded
        done = (study / "0000/result.json").read_bytes()
        fill.unlink()  # the cause is gone
        r = run_llem("--resume", str(study), "-q", cwd=tmp_path, timeout=600)
        assert r.returncode == 0, r.stderr
        m = StudyResult.load(study / "manifest.json")
        assert [j.status for j in m.jobs] == ["completed", "completed"] and m.finished_at
        assert (study / "0000/result.json").read_bytes() == done
        assert not list(study.glob(".manifest.json.*.tmp")) and not (study / engine.RESERVE_NAME).exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)
