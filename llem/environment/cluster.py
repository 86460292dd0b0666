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


# sacct fields -> result keys, for a job that ended before it could record itself.
_SACCT_FIELDS = (("JobID", "array_job"), ("JobIDRaw", "job_id"), ("State", "state"), ("NodeList", "node_list"),
                 ("Partition", "partition"), ("Account", "account"), ("QOS", "qos"), ("Cluster", "cluster_name"),
                 ("Start", "start"), ("End", "end"), ("Elapsed", "elapsed"), ("ExitCode", "exit_code"),
                 ("Timelimit", "time_limit"))


def sacct_facts(job_id: str, timeout_s: float = 30.0) -> dict:
    """What Slurm accounting says about a job (``"123"`` or an array task ``"123_4"``).

    The same keys as :func:`slurm_facts` where they overlap, plus ``state``, ``start``, ``end``,
    ``elapsed``, ``exit_code`` and ``time_limit``. ``{}`` when sacct is missing or does not
    answer: these facts enrich a failure record and must never stop it from being written.
    """
    import subprocess

    fmt = ",".join(f for f, _ in _SACCT_FIELDS)
    try:
        out = subprocess.run(["sacct", "-j", str(job_id), "-X", "-n", "-P", f"--format={fmt}"],
                             capture_output=True, text=True, timeout=timeout_s, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    # -X gives one line per allocation. An array's id lists every task, and one task's own
    # id equals the array's id, so match the id as given first, then the task's own id.
    row = next((r for r in rows if r[0] == str(job_id)), None) \
        or next((r for r in rows if len(r) > 1 and r[1] == str(job_id)), None)
    if row is None or len(row) != len(_SACCT_FIELDS):
        return {}
    raw = {key: (v or None) for (_, key), v in zip(_SACCT_FIELDS, row)}
    facts: dict = {"scheduler": "slurm", **{k: None for k in _CORE_KEYS}, "source": "sacct"}
    facts.update({k: v for k, v in raw.items() if v is not None})
    try:
        facts["job_id"] = int(raw["job_id"]) if raw["job_id"] else None
    except ValueError:
        pass
    array = raw["array_job"] or ""
    if "_" in array and not array.endswith("]"):
        head, _, tail = array.partition("_")
        if head.isdigit() and tail.isdigit():
            facts["array_job_id"], facts["array_task_id"] = int(head), int(tail)
    else:
        facts.pop("array_job", None)
    # A one-node allocation's node list is its node; sacct says "None assigned" for a job
    # that never started.
    nodes = raw["node_list"] or ""
    if nodes and not any(c in nodes for c in ",[") and nodes != "None assigned":
        facts["node_name"] = nodes
    return facts
