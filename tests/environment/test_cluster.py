"""llem.environment.cluster.slurm_facts: what a result records about the Slurm job it ran in (no cluster needed)."""
from __future__ import annotations

from llem.environment.cluster import slurm_facts

# Variables as slurmd exports them to task 3 of array job 41 (whose own job id is 44).
ARRAY_TASK_ENV = {
    "SLURM_JOB_ID": "44", "SLURM_JOBID": "44", "SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "3",
    "SLURMD_NODENAME": "gpu-node-07", "SLURM_JOB_NODELIST": "gpu-node-07", "SLURM_JOB_NUM_NODES": "1",
    "SLURM_JOB_PARTITION": "gpu", "SLURM_JOB_ACCOUNT": "energy", "SLURM_JOB_QOS": "normal",
    "SLURM_CLUSTER_NAME": "hpc", "SLURM_CPUS_ON_NODE": "16", "SLURM_GPUS_ON_NODE": "1",
    "SLURM_JOB_GPUS": "2", "SLURM_JOB_NAME": "run",
}


def test_outside_slurm_is_empty():
    assert slurm_facts({"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0"}) == {}
    # a stray empty variable (e.g. exported by a wrapper) is not an allocation
    assert slurm_facts({"SLURM_JOB_ID": ""}) == {}


def test_array_task():
    f = slurm_facts(ARRAY_TASK_ENV)
    assert f["scheduler"] == "slurm"
    assert f["job_id"] == 44 and f["array_job_id"] == 41 and f["array_task_id"] == 3
    assert f["array_job"] == "41_3"
    assert f["node_name"] == "gpu-node-07"
    assert f["partition"] == "gpu" and f["account"] == "energy" and f["qos"] == "normal"
    assert f["cluster_name"] == "hpc" and f["cpus_on_node"] == 16 and f["job_gpus"] == "2"


def test_plain_job_keeps_the_core_keys():
    f = slurm_facts({"SLURM_JOBID": "9", "SLURM_JOB_PARTITION": "debug"})
    # the older name is enough, and keys Slurm did not set are None, not missing or guessed
    assert f["job_id"] == 9 and f["partition"] == "debug"
    for key in ("array_job_id", "array_task_id", "node_name", "account", "qos"):
        assert f[key] is None
    assert "array_job" not in f


def test_login_node_shell_does_not_claim_a_node():
    # salloc's shell has the allocation's variables but runs elsewhere: no SLURMD_NODENAME
    f = slurm_facts({"SLURM_JOB_ID": "5", "SLURM_JOB_NODELIST": "gpu-node-01", "SLURM_JOB_NUM_NODES": "1"})
    assert f["node_name"] is None and f["node_list"] == "gpu-node-01"


def test_reads_the_process_environment(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("SLURM"):
            monkeypatch.delenv(k)
    assert slurm_facts() == {}
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURMD_NODENAME", "n1")
    assert slurm_facts()["job_id"] == 77 and slurm_facts()["node_name"] == "n1"
