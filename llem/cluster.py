"""Where a job ran on a cluster: the scheduler's own account of it, for the environment snapshot.

A result measured on a shared cluster is only comparable to another if one can tell which node,
partition and allocation produced it (two nodes' GPUs of the same model can differ by several
per cent in energy). Slurm states all of it in the job's environment, so it is read from there
and nothing is asked of the scheduler.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

# result key -> SLURM_* variables that may carry it, first present wins. The older names
# (SLURM_JOBID, SLURM_NODELIST) are still the only ones some sites' srun sets.
_SLURM_KEYS: dict[str, tuple[str, ...]] = {
    "job_id": ("SLURM_JOB_ID", "SLURM_JOBID"),
    "array_job_id": ("SLURM_ARRAY_JOB_ID",),
    "array_task_id": ("SLURM_ARRAY_TASK_ID",),
    "job_name": ("SLURM_JOB_NAME",),
    "node_name": ("SLURMD_NODENAME",),
    "node_list": ("SLURM_JOB_NODELIST", "SLURM_NODELIST"),
    "num_nodes": ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"),
    "partition": ("SLURM_JOB_PARTITION",),
    "account": ("SLURM_JOB_ACCOUNT",),
    "qos": ("SLURM_JOB_QOS",),
    "cluster_name": ("SLURM_CLUSTER_NAME",),
    "cpus_on_node": ("SLURM_CPUS_ON_NODE",),
    "cpus_per_task": ("SLURM_CPUS_PER_TASK",),
    "mem_per_node_mb": ("SLURM_MEM_PER_NODE",),
    "gpus": ("SLURM_GPUS_ON_NODE", "SLURM_GPUS"),
    "job_gpus": ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"),
    "gres": ("SLURM_JOB_GRES", "SLURM_GRES"),
    "step_id": ("SLURM_STEP_ID", "SLURM_STEPID"),
    "task_id": ("SLURM_PROCID",),
    "restart_count": ("SLURM_RESTART_COUNT",),
    "submit_dir": ("SLURM_SUBMIT_DIR",),
    "submit_host": ("SLURM_SUBMIT_HOST",),
}
# Always present in Slurm (None when Slurm did not set it), so tables of results line up.
_CORE_KEYS = ("job_id", "array_job_id", "array_task_id", "node_name", "partition", "account", "qos")
_INT_KEYS = {"job_id", "array_job_id", "array_task_id", "num_nodes", "cpus_on_node", "cpus_per_task",
             "mem_per_node_mb", "step_id", "task_id", "restart_count"}


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> Optional[str]:
    for n in names:
        v = env.get(n)
        if v not in (None, ""):
            return v
    return None


def slurm_facts(env: Optional[Mapping[str, str]] = None) -> dict:
    """The Slurm allocation this process runs in; ``{}`` outside Slurm.

    Always: ``scheduler`` ("slurm"), ``job_id``, ``array_job_id``, ``array_task_id``,
    ``node_name``, ``partition``, ``account``, ``qos`` (``None`` where Slurm did not say, e.g.
    the array keys of a job that is not part of an array). Besides, whatever else of the
    allocation Slurm exported (node list, CPUs, GPUs, cluster name, ...). Integers are ints.
    """
    env = os.environ if env is None else env
    if _first(env, _SLURM_KEYS["job_id"]) is None:
        return {}
    facts: dict = {"scheduler": "slurm", **{k: None for k in _CORE_KEYS}}
    for key, names in _SLURM_KEYS.items():
        v = _first(env, names)
        if v is None:
            continue
        if key in _INT_KEYS:
            try:
                facts[key] = int(v)
                continue
            except ValueError:
                pass
        facts[key] = v
    # node_name is never taken from the node list: a shell from salloc runs on the login node
    # with the allocation's variables, and would record a node it does not run on.
    # Array jobs: SLURM_JOB_ID is the task's own id; the array's id plus index is how
    # sacct and squeue show it, so record that form too.
    if facts["array_job_id"] is not None and facts["array_task_id"] is not None:
        facts["array_job"] = f"{facts['array_job_id']}_{facts['array_task_id']}"
    return facts
