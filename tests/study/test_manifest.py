"""manifest.json is rebuildable from the job directories; resume spots changed configs."""
import json
import os

import pytest

from llem.config.compose import load_config
from llem.errors import ConfigError
from llem.results.manifest import JobEntry, StudyResult
from llem.runners.jobs import failed_result
from llem.study.manifest import rebuild


def _result(config, status):
    r = failed_result(config, RuntimeError("boom"), "2026-01-01T00:00:00+00:00")
    if status == "completed":
        r.status, r.error_type, r.error_message = "completed", None, None
        r.output_tokens_per_s = 42.0
    return r


def _study(tmp_path, statuses):
    cfg = load_config(["output_len=4"])
    jobs = []
    for i, st in enumerate(statuses):
        jobs.append(JobEntry(job_id=f"{i:04d}", index=i, grid_index=i, overrides=[f"batch={i + 1}"],
                             config_hash=cfg.config_hash, backend="pytorch", model="tiny-llama", precision="fp32",
                             batch=i + 1, status=st, job_dir=f"{i:04d}", log_path=f"{i:04d}/job.log"))
    m = StudyResult(study_name="s", study_design_hash="d", llem_version="0", created_at="t", updated_at="t",
                    study_dir=str(tmp_path), jobs=jobs, owner={"host": "elsewhere", "pid": 1})
    m.save(tmp_path)
    return cfg, m


def test_rebuild_takes_status_from_each_job_directory(tmp_path):
    # the manifest still says running/pending: the study process was killed mid-way
    cfg, m = _study(tmp_path, ["running", "running", "running", "pending"])
    (tmp_path / "0000/.hydra").mkdir(parents=True)
    _result(cfg, "completed").save(tmp_path / "0000/result.json")
    (tmp_path / "0001/.hydra").mkdir(parents=True)
    _result(cfg, "failed").save(tmp_path / "0001/result.json")
    (tmp_path / "0002/.hydra").mkdir(parents=True)  # started, killed before writing its result
    r = rebuild(tmp_path)
    assert [j.status for j in r.jobs] == ["completed", "failed", "lost", "pending"]
    assert r.jobs[0].result_path == "0000/result.json" and r.jobs[0].output_tokens_per_s == 42.0
    assert r.jobs[1].error_type == "RuntimeError" and r.jobs[1].error_message == "boom"
    assert r.jobs[2].error_type == "Lost"
    assert r.summary["failed_jobs"] == ["0001", "0002"] and r.summary["pending"] == 1
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert [j["status"] for j in on_disk["jobs"]] == ["completed", "failed", "lost", "pending"]


def test_rebuild_without_a_manifest_uses_the_job_dirs(tmp_path):
    cfg = load_config(["output_len=4"])
    for name, st in (("0000", "completed"), ("0001", None)):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra/overrides.yaml").write_text(f"- batch={int(name) + 1}\n")
        if st:
            _result(cfg, st).save(tmp_path / name / "result.json")
    r = rebuild(tmp_path)
    assert [(j.job_id, j.status, j.overrides) for j in r.jobs] == [("0000", "completed", ["batch=1"]),
                                                                   ("0001", "lost", ["batch=2"])]
    assert (tmp_path / "manifest.json").is_file()


def test_running_job_of_a_live_study_is_not_called_lost(tmp_path):
    import socket

    _, m = _study(tmp_path, ["running"])
    m.owner = {"host": socket.gethostname(), "pid": os.getppid()}  # a live process that is not us
    m.save(tmp_path)
    (tmp_path / "0000/.hydra").mkdir(parents=True)
    assert rebuild(tmp_path, save=False).jobs[0].status == "running"


def test_an_owner_from_another_boot_is_not_alive(tmp_path):
    import socket

    from llem.environment.snapshot import boot_id
    from llem.study.engine import _owner
    from llem.study.manifest import _owner_alive

    here = {"host": socket.gethostname(), "pid": os.getppid()}  # a live process that is not us
    assert _owner()["boot_id"] == boot_id() is not None
    assert _owner_alive({**here, "boot_id": boot_id()})
    # the same host name and a live pid, but another machine (or this one before a reboot): the
    # pid belongs to someone else, so the study's job is lost, not running
    assert not _owner_alive({**here, "boot_id": "another-boot"})
    _, m = _study(tmp_path, ["running"])
    m.owner = {**here, "boot_id": "another-boot"}
    m.save(tmp_path)
    (tmp_path / "0000/.hydra").mkdir(parents=True)
    assert rebuild(tmp_path, save=False).jobs[0].status == "lost"


def test_resume_names_changed_jobs(tmp_path):
    from llem.cli.study import _report_changes, changed_jobs
    from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer

    with standalone_composer() as c:
        plan = plan_grid(["batch=1,2", "output_len=4"], c, ExecutionOptions())
    _, m = _study(tmp_path, ["completed", "pending"])
    for e, j in zip(m.jobs, plan.jobs):
        e.config_hash = j.config_hash
    assert changed_jobs(m, plan) == []
    m.jobs[1].config_hash = "0" * 64  # a pending job whose config changed since: it reruns, and we say so
    assert [c[0] for c in changed_jobs(m, plan)] == ["0001"]
    _report_changes(m, plan, quiet=True)
    m.jobs[0].config_hash = "1" * 64  # a completed one: refuse, naming it
    with pytest.raises(ConfigError, match=r"0000 \(batch=1 output_len=4\): config_hash 111111111111 -> "):
        _report_changes(m, plan, quiet=True)


def test_resume_refuses_a_grid_that_gained_jobs(tmp_path):
    from llem.cli.study import _report_changes
    from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer

    with standalone_composer() as c:
        plan = plan_grid(["batch=1,2,3", "output_len=4"], c, ExecutionOptions())
    _, m = _study(tmp_path, ["completed", "pending"])
    for e, j in zip(m.jobs, plan.jobs):
        e.config_hash = j.config_hash
    with pytest.raises(ConfigError, match=r"0002 \(batch=3 output_len=4\): config_hash \(not in the study\) -> "):
        _report_changes(m, plan, quiet=True)
