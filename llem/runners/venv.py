"""The venv runner: the job runs in another Python environment (``<venv>/bin/python``).

vLLM and TensorRT-LLM pin their own torch and transformers, so they cannot share one
environment with each other or with the PyTorch backend. The parent hands the validated
config to ``python -m llem.runners.worker`` in the venv and reads back the result it wrote.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from llem.config.vllm_options import SHARING_ENV
from llem.runners.base import Runner

WORKER_RESULT = ".worker_result.json"
WORKER_CONFIG = ".worker_config.json"


def venv_python(venv: str | Path) -> Path:
    venv = Path(venv).expanduser()
    if venv.is_file():  # a python executable given directly
        return venv
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


class VenvRunner(Runner):
    name = "venv"

    def __init__(self, venv: str | Path, backend: str | None = None) -> None:
        self.venv = Path(venv).expanduser()
        self.backend = backend

    @property
    def python(self) -> Path:
        return venv_python(self.venv)

    def check(self) -> None:
        from llem.errors import BackendUnavailableError

        if not self.python.exists():
            raise BackendUnavailableError(
                f"runner.{self.backend or '<backend>'}=venv:{self.venv}: {self.python} does not exist; "
                "create the venv (e.g. scripts/setup-vllm-env.sh) or fix the path")

    def describe(self) -> dict:
        return {"name": self.name, "venv": str(self.venv), "python": str(self.python)}

    def run(self, config, job_dir, *, progress=None):
        from llem.result import ExperimentResult

        self.check()
        tmp = None
        if job_dir is None:
            tmp = tempfile.mkdtemp(prefix="llem-venv-")
            job_dir = Path(tmp)
        job_dir = Path(job_dir).resolve()
        job_dir.mkdir(parents=True, exist_ok=True)
        cfg_path, out_path = job_dir / WORKER_CONFIG, job_dir / WORKER_RESULT
        out_path.unlink(missing_ok=True)  # a stale result from an earlier attempt must never be read back
        cfg_path.write_text(config.model_dump_json())
        sharing = os.environ.get(SHARING_ENV)
        if sharing:
            try:
                return self._run_in_session(job_dir, cfg_path, out_path, json.loads(sharing), progress)
            finally:
                out_path.unlink(missing_ok=True)
                cfg_path.unlink(missing_ok=True)
        cmd = [str(self.python), "-m", "llem.runners.worker", "--config", str(cfg_path),
               "--job-dir", str(job_dir), "--out", str(out_path)]
        if progress:
            progress(f"running in {self.python}")
        # The worker's output goes where ours goes (the job log in a study).
        sys.stdout.flush()
        sys.stderr.flush()
        from llem.runners.logfilter import console_env, console_fd

        # a single `llem run` keeps the terminal for llem's own lines: the worker gets its descriptor
        fd = console_fd()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env={**os.environ, **console_env()},
                                pass_fds=(fd,) if fd is not None else ())
        try:
            rc = proc.wait()
        except BaseException:
            # Interrupted (Ctrl-C, timeout): never leave the worker running on the GPU.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        try:
            if out_path.is_file():
                result = ExperimentResult.load(out_path)
                result.extra.setdefault("runner", self.describe())
                return result
            if rc < 0:
                name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
                raise WorkerKilled(f"the worker in {self.venv} was killed by {name}"
                                   + (" (out of memory?)" if -rc == signal.SIGKILL else ""))
            raise WorkerFailed(f"the worker in {self.venv} exited with code {rc} without writing a result "
                               "(is llem installed in that venv? see the job log)")
        finally:
            out_path.unlink(missing_ok=True)
            cfg_path.unlink(missing_ok=True)
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)


    def _run_in_session(self, job_dir: Path, cfg_path: Path, out_path: Path, sharing: dict, progress):
        """The job in this venv's long-lived worker (``worker --serve``), which keeps the vLLM
        engine of the jobs before it. A worker that died is replaced for the next job."""
        from llem.result import ExperimentResult

        s = _SESSIONS.get(str(self.python))
        if s is None or s.proc.poll() is not None:
            s = _SESSIONS[str(self.python)] = _Session(self.python)
            if progress:
                progress(f"running in {self.python} (one worker for the jobs sharing its engine)")
        req = {"config": str(cfg_path), "job_dir": str(job_dir), "out": str(out_path), "sharing": sharing,
               "log": sharing.get("log")}
        try:
            reply = s.ask(req)
        except BaseException:
            s.stop()  # interrupted (Ctrl-C, timeout): never leave the worker running on the GPU
            _SESSIONS.pop(str(self.python), None)
            raise
        if reply is None or not out_path.is_file():
            rc = s.proc.poll()
            _SESSIONS.pop(str(self.python), None)
            s.stop()
            if rc is not None and rc < 0:
                name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
                raise WorkerKilled(f"the worker in {self.venv} was killed by {name}"
                                   + (" (out of memory?)" if -rc == signal.SIGKILL else ""))
            raise WorkerFailed(f"the worker in {self.venv} ended without writing a result (see the job log)")
        result = ExperimentResult.load(out_path)
        result.extra.setdefault("runner", self.describe())
        return result


class _Session:
    """A ``worker --serve`` process: requests on its stdin, "done" lines on a pipe of its own
    (its stdout and stderr go to each job's log)."""

    def __init__(self, python: Path) -> None:
        r, w = os.pipe()
        self.proc = subprocess.Popen([str(python), "-m", "llem.runners.worker", "--serve", "--reply-fd", str(w)],
                                     stdin=subprocess.PIPE, pass_fds=(w,), text=True)
        os.close(w)
        self.replies = os.fdopen(r, "r")

    def ask(self, req: dict) -> Optional[dict]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        line = self.replies.readline()  # "" when the worker died
        return json.loads(line) if line else None

    def stop(self, wait_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.replies.close()

    def close(self, wait_s: float = 120.0) -> None:
        """End of the group: EOF lets the worker shut its engine down, then it exits."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(wait_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.stop()


_SESSIONS: dict[str, _Session] = {}


def close_sessions() -> None:
    """Shut down every long-lived worker of this process (the end of a shared-engine group)."""
    for s in list(_SESSIONS.values()):
        s.close()
    _SESSIONS.clear()


class WorkerKilled(RuntimeError):
    pass


class WorkerFailed(RuntimeError):
    pass
