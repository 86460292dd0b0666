"""llem's local launcher scheduling: one job per GPU, per-GPU cooldown, timeout stop."""
import signal
import subprocess
import sys
import time

from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.llem_plugins.launcher import LlemLocalLauncher, _Running


class _Cfg:
    class hydra:
        class sweep:
            dir = None


class SleepLauncher(LlemLocalLauncher):
    """The real scheduling loop, with `sleep` processes for jobs."""

    def __init__(self, tmp, seconds, **kw):
        super().__init__(**kw)
        self.tmp, self.seconds, self.starts, self.ends = tmp, seconds, [], {}
        self.config = _Cfg()
        _Cfg.hydra.sweep.dir = str(tmp)

    def _start(self, idx, overrides, gpu):
        self.starts.append((idx, gpu, time.monotonic()))
        proc = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({self.seconds})"],
                                start_new_session=True)
        d = self.tmp / str(idx)
        d.mkdir(exist_ok=True)
        return _Running(idx, list(overrides), d, proc, gpu, open(d / "log", "ab"))

    def _finish(self, r):
        rc = r.proc.wait()
        self.ends[r.idx] = (time.monotonic(), rc)
        r.log_file.close()
        return JobReturn(status=JobStatus.FAILED if r.timed_out or rc else JobStatus.COMPLETED, _return_value=rc)


def test_one_job_per_gpu_with_cooldown(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    la = SleepLauncher(tmp_path, 0.3, parallel_gpus=True)
    la.cooldown_s = 0.6
    ended = []
    la.on_job_end = lambda k, ret: ended.append(k)
    rets = la.launch([["a=1"], ["a=2"], ["a=3"], ["a=4"]], initial_job_idx=0)
    assert [r.status for r in rets] == [JobStatus.COMPLETED] * 4 and sorted(ended) == [0, 1, 2, 3]
    assert la.slots() == 2
    (i0, g0, t0), (i1, g1, t1) = la.starts[:2]
    # side by side: the second job started before the first had ended (the job sleeps 0.3 s)
    assert {g0, g1} == {"0", "1"} and t1 < la.ends[i0][0]
    for gpu in ("0", "1"):
        ts = [t for _, g, t in la.starts if g == gpu]
        assert len(ts) == 2 and ts[1] - ts[0] >= 0.3 + 0.6 - 0.05  # job + cooldown on the same GPU


def test_serial_by_default_and_timeout_stops_the_job(tmp_path):
    # jobs that would sleep 10 minutes: the launcher's timeout must stop them, whatever the host's speed
    la = SleepLauncher(tmp_path, 600, timeout_s=0.3, kill_grace_s=1)
    assert la.slots() == 1
    rets = la.launch([["a=1"], ["a=2"]], initial_job_idx=5)
    # stopped by the launcher's SIGTERM, not ended on their own
    assert [la.ends[i][1] for i in (5, 6)] == [-signal.SIGTERM, -signal.SIGTERM]
    assert [r.status for r in rets] == [JobStatus.FAILED, JobStatus.FAILED]
    assert [i for i, _, _ in la.starts] == [5, 6] and la.starts[1][2] - la.starts[0][2] >= 0.3  # one at a time
