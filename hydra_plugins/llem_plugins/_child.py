"""``python -m hydra_plugins.llem_plugins._child <payload>``: one job of llem's local launcher.

Restores the parent's Hydra state from the payload (as submitit does for its workers), runs
the job with Hydra's ``run_job`` (so the job gets its ``.hydra/`` files, logging and output
directory exactly as under any Hydra launcher) and pickles the ``JobReturn`` back.
"""
from __future__ import annotations

import sys


def main(payload_path: str) -> int:
    import pickle

    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals

    with open(payload_path, "rb") as f:
        p = pickle.load(f)
    _die_with_parent(p.get("parent_pid"))
    Singleton.set_state(p["singleton_state"])
    setup_globals()
    ret = run_job(hydra_context=p["hydra_context"], task_function=p["task_function"], config=p["sweep_config"],
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
    tmp = p["return_path"] + ".tmp"
    with open(tmp, "wb") as f:
        cloudpickle.dump(out, f)
    import os

    os.replace(tmp, p["return_path"])
    return 0 if ret.status == JobStatus.COMPLETED else 1


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
