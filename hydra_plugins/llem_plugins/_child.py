"""``python -m hydra_plugins.llem_plugins._child <payload>``: one job of llem's local launcher.

Restores the parent's Hydra state from the payload (as submitit does for its workers), runs
the job with Hydra's ``run_job`` (so the job gets its ``.hydra/`` files, logging and output
directory exactly as under any Hydra launcher) and pickles the ``JobReturn`` back.
"""
from __future__ import annotations

import sys


def main(payload_path: str) -> int:
    import pickle

    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals

    with open(payload_path, "rb") as f:
        p = pickle.load(f)
    _die_with_parent(p.get("parent_pid"))
    Singleton.set_state(p["singleton_state"])
    setup_globals()
    if "jobs" not in p:
        return _one(p, p["sweep_config"], p["return_path"])
    # a shared-engine group: its jobs one after another in this process, each with its own
    # log, .hydra files, result and return; the engine outlives each job until the group ends
    import json
    import os

    from llem.config.vllm_options import SHARING_ENV

    rc = 0
    try:
        for job in p["jobs"]:
            _log_to(job["log_path"])
            os.environ[SHARING_ENV] = json.dumps(job["sharing"])
            rc = max(rc, _one(p, job["sweep_config"], job["return_path"]))
    finally:
        os.environ.pop(SHARING_ENV, None)
        _end_group()
    return rc


def _one(p: dict, sweep_config, return_path: str) -> int:
    import os

    import cloudpickle
    from hydra.core.utils import JobStatus, run_job

    ret = run_job(hydra_context=p["hydra_context"], task_function=p["task_function"], config=sweep_config,
                  job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    # cfg, hydra_cfg and task_name travel back too: Hydra callbacks, sweepers and tools that
    # read job returns expect them exactly as Hydra's own launchers fill them
    out = {"status": ret.status.name, "return_value": None, "error_type": None, "error_message": None,
           "working_dir": ret.working_dir, "cfg": ret.cfg, "hydra_cfg": ret.hydra_cfg,
           "task_name": ret.task_name}
    if ret.status == JobStatus.COMPLETED:
        try:
            cloudpickle.dumps(ret._return_value)
            out["return_value"] = ret._return_value
        except Exception:
            out["return_value"] = repr(ret._return_value)
    else:
        err = ret._return_value
        out["error_type"] = type(err).__name__
        out["error_message"] = str(err)
    tmp = return_path + ".tmp"
    with open(tmp, "wb") as f:
        cloudpickle.dump(out, f)
    os.replace(tmp, return_path)
    return 0 if ret.status == JobStatus.COMPLETED else 1


def _log_to(path: str) -> None:
    """This process's stdout and stderr (and so its children's) into the next job's log."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _end_group() -> None:
    """The group's engines shut down: a venv's long-lived worker, or one kept in this process."""
    from llem.runners.venv import close_sessions

    close_sessions()
    if "llem.backends.vllm" in sys.modules:
        sys.modules["llem.backends.vllm"].release_engines()


def _die_with_parent(parent_pid) -> None:
    """If the study process dies (SIGKILL), its job must not run on unseen, holding the GPU
    and writing into a directory a resume will reuse. Linux only; elsewhere a no-op."""
    import os
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        return
    if parent_pid and os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
