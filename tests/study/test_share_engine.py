"""hydra.launcher.share_engine: which jobs share a vLLM engine, and the launcher running such a
group in one process job by job (the real vLLM run: tests/study/test_vllm_pytorch_grid.py)."""
import pickle
import subprocess
import sys

from hydra.core.utils import JobStatus

from hydra_plugins.llem_plugins.launcher import LlemLocalLauncher
from llem.config.compose import load_config
from llem.config.vllm_options import engine_group_key
from llem.study.engine import engine_groups
from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer


def test_engine_key_ignores_what_the_engine_does_not_fix():
    base = ["backend=vllm", "precision=fp32"]
    k = engine_group_key(load_config(base))
    for same in (["batch=8"], ["output_len=7"], ["dataset.num_prompts=3"], ["vllm.temperature=0.7"],
                 ["measurement.cycles=9"], ["vllm.batching=continuous"], ["energy=none"]):
        assert engine_group_key(load_config(base + same)) == k, same
    for other in (["precision=bf16"], ["seed=1"], ["vllm.enforce_eager=true"], ["vllm.max_num_seqs=4"],
                  ["vllm.gpu_memory_utilization=0.5"], ["model=llama-3.2-1b"]):
        assert engine_group_key(load_config(base + other)) != k, other
    assert engine_group_key(load_config(["backend=pytorch"])) is None


def test_groups_keep_first_appearance_order_and_leave_other_jobs_alone():
    with standalone_composer() as c:
        vllm = plan_grid(["backend=vllm", "batch=1,8", "vllm.enforce_eager=false,true"], c, ExecutionOptions()).jobs
        torch = plan_grid(["backend=pytorch", "batch=1,8"], c, ExecutionOptions()).jobs
    jobs = [torch[0], *vllm, torch[1]]
    groups = engine_groups(jobs)
    shown = [[(j.config.backend, j.config.batch, j.config.vllm.enforce_eager if j.config.vllm else None) for j in g]
             for g in groups]
    # vLLM: one group per enforce_eager value, batches 1 and 8 together, where its first job was;
    # PyTorch jobs alone, in place
    assert shown == [[("pytorch", 1, None)], [("vllm", 1, False), ("vllm", 8, False)],
                     [("vllm", 1, True), ("vllm", 8, True)], [("pytorch", 8, None)]]
    assert sum(len(g) for g in groups) == len(jobs)


FAKE_CHILD = """
import os, pickle, signal, sys, time
jobs = pickle.load(open(sys.argv[1], "rb"))["jobs"]
for job in jobs:
    time.sleep(0.05)
    if job["sharing"].get("die"):
        os.kill(os.getpid(), signal.SIGKILL)
    out = {"status": "COMPLETED", "return_value": job["sharing"]["position"], "cfg": None, "hydra_cfg": None,
           "task_name": None, "error_type": None, "error_message": None}
    tmp = job["return_path"] + ".tmp"
    pickle.dump(out, open(tmp, "wb"))
    os.replace(tmp, job["return_path"])
"""


class FakeGroupLauncher(LlemLocalLauncher):
    """The real group loop; each process a small script that returns its jobs in order, and
    kills itself at the job marked to die (a test double for the job process)."""

    def __init__(self, tmp, die_at=(), **kw):
        super().__init__(share_engine=True, **kw)
        self.tmp, self.die_at, self.processes, self.events = tmp, set(die_at), 0, []
        self.on_job_start = lambda k, d, g: self.events.append(("start", k))
        self.on_job_end = lambda k, ret: self.events.append(("end", k, ret.status.name))

    def _prepare(self, idx, overrides, gpu):
        d = self.tmp / f"{idx:04d}"
        d.mkdir(exist_ok=True)
        (d / ".llem_return.pkl").unlink(missing_ok=True)
        return None, d

    def _spawn(self, payload, payload_path, log_path, gpu):
        self.processes += 1
        for job in payload["jobs"]:
            if job["sharing"]["position"] in self.die_at:
                job["sharing"]["die"] = True
                self.die_at.discard(job["sharing"]["position"])  # dies once: the retry runs it
        with open(payload_path, "wb") as f:
            pickle.dump({"jobs": payload["jobs"]}, f)
        log_file = open(log_path, "ab")
        proc = subprocess.Popen([sys.executable, "-c", FAKE_CHILD, str(payload_path)], stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
        return proc, log_file

    def run(self, n):
        self.engine_group = {"jobs": [f"{k:04d}" for k in range(n)], "max_num_seqs": 8}
        return self._launch_group([[f"batch={k}"] for k in range(n)], 0)


def test_a_group_runs_in_one_process_with_callbacks_per_job(tmp_path):
    la = FakeGroupLauncher(tmp_path)
    rets = la.run(3)
    assert la.processes == 1
    assert [r.status for r in rets] == [JobStatus.COMPLETED] * 3 and [r.return_value for r in rets] == [0, 1, 2]
    assert la.events == [("start", 0), ("end", 0, "COMPLETED"), ("start", 1), ("end", 1, "COMPLETED"),
                         ("start", 2), ("end", 2, "COMPLETED")]


def test_a_process_that_dies_fails_its_job_and_the_rest_go_on_in_a_new_one(tmp_path):
    la = FakeGroupLauncher(tmp_path, die_at={1})
    rets = la.run(4)
    assert la.processes == 2
    assert [r.status for r in rets] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED,
                                        JobStatus.COMPLETED]
    assert "killed by SIGKILL" in str(rets[1]._return_value)
    # every job started and ended exactly once, in order
    assert [e[1] for e in la.events if e[0] == "start"] == [0, 1, 2, 3]
    assert [e[1] for e in la.events if e[0] == "end"] == [0, 1, 2, 3]
