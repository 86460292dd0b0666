"""The Slurm launcher's wait for result files a shared filesystem may show late (no cluster
needed): one wait for a whole batch, none for a job that ran on this host.

The jobs are stand-ins for submitit's Job objects (only their ids and result paths), sacct is a
stand-in answer, and the launcher's clock is a virtual one on which time passes only when it
sleeps, so nothing here depends on the machine's speed."""
from __future__ import annotations

import socket
import types
from pathlib import Path

from hydra_plugins.llem_plugins import slurm
from tests.devices.sim import VirtualClock


class _Job:
    def __init__(self, folder: Path, job_id: str) -> None:
        self.job_id = job_id
        self.paths = types.SimpleNamespace(folder=folder, result_pickle=folder / f"{job_id}_result.pkl")
        self._results_timeout_s = 15  # submitit's class default


def _launcher(monkeypatch, nodes: dict[str, str], on_sleep=None) -> tuple[slurm.LlemSlurmLauncher, VirtualClock]:
    clock = VirtualClock()

    def sleep(s: float) -> None:
        clock.sleep(s)
        if on_sleep:
            on_sleep(clock)

    monkeypatch.setattr(slurm, "time", types.SimpleNamespace(monotonic=clock.perf_counter, sleep=sleep))
    import llem.environment.cluster as cluster

    monkeypatch.setattr(cluster, "sacct_facts", lambda job_id: {"state": "TIMEOUT", "node_name": nodes.get(job_id)})
    return slurm.LlemSlurmLauncher.__new__(slurm.LlemSlurmLauncher), clock


def test_jobs_that_ran_on_this_host_are_not_waited_for(tmp_path, monkeypatch):
    here = socket.gethostname().split(".")[0]
    jobs = [_Job(tmp_path, "7_0"), _Job(tmp_path, "7_1"), _Job(tmp_path, "7_2")]
    jobs[2].paths.result_pickle.write_bytes(b"returned")
    launcher, clock = _launcher(monkeypatch, {"7_0": here, "7_1": here, "7_2": here})
    t0 = clock.t
    facts = launcher._await_results(jobs)
    assert clock.t == t0  # no sleep at all
    assert set(facts) == {"7_0", "7_1"} and facts["7_0"]["state"] == "TIMEOUT"  # the job with a result: no sacct
    assert [j._results_timeout_s for j in jobs] == [0, 0, 15]


def test_one_wait_serves_every_job_that_ran_elsewhere(tmp_path, monkeypatch):
    jobs = [_Job(tmp_path, f"8_{k}") for k in range(4)]

    def late_file(clock):  # the shared filesystem shows 8_1's result 3 s into the wait
        if clock.t - t0 >= 3:
            jobs[1].paths.result_pickle.write_bytes(b"returned")

    launcher, clock = _launcher(monkeypatch, {"8_0": "node1", "8_1": "node2", "8_2": None, "8_3": "node4"}, late_file)
    t0 = clock.t
    facts = launcher._await_results(jobs)
    # one grace period for the three jobs whose file never came (submitit alone: 15 s each, 45 s)
    assert launcher.result_grace_s <= clock.t - t0 < launcher.result_grace_s + 1.5
    assert jobs[1].paths.result_pickle.is_file() and set(facts) == {"8_0", "8_1", "8_2", "8_3"}
    assert all(j._results_timeout_s == 0 for j in jobs)


def test_the_wait_ends_once_every_file_has_come(tmp_path, monkeypatch):
    jobs = [_Job(tmp_path, "9_0")]

    def late_file(clock):
        jobs[0].paths.result_pickle.write_bytes(b"returned")

    launcher, clock = _launcher(monkeypatch, {"9_0": "node1"}, late_file)
    t0 = clock.t
    launcher._await_results(jobs)
    assert clock.t - t0 == 1.0
