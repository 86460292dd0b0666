"""Tensor parallelism (``tp_plan: auto``): this process becomes rank 0 and starts ``tp_size - 1``
follower processes (``python -m llem.backends.pytorch --tp-follower``), the same rendezvous
``torchrun`` would set up. Rank 0 runs the harness and meters; followers mirror every
``prepare``/``generate`` it broadcasts, so each collective has all its ranks.

Shutdown is bounded (``PyTorchBackend.close``): rank 0 broadcasts a stop and closes each
follower's stdin. A follower waiting for the next command gets the broadcast; the closed pipe
reaches it wherever else it is blocked, and it exits by itself after a grace period. Rank 0
tears its process group down *beside* the wait, because NCCL's communicator teardown is
collective (pytorch/pytorch#122358): a follower in ``destroy_process_group`` waits for rank 0
to do the same. A follower still alive after ``stop_timeout_s`` is terminated, then killed, and
``close()`` records that in ``shutdown_warnings`` instead of raising.

One concern of ``PyTorchBackend`` (``backend.py``): the mixin shares the backend's state.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Optional


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FOLLOWER_ARGS = ("-m", "llem.backends.pytorch", "--tp-follower")
# a follower that stopped on its own stdin watchdog rather than by finishing normally
WATCHDOG_EXIT = 3


def _die_with_parent() -> None:
    """In a follower, before exec: ask Linux to SIGTERM it when the job process dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _watch_for_stop(grace_s: float) -> None:
    """In a follower: rank 0 closing our stdin (or dying) means stop. The in-band stop only reaches
    a follower waiting in ``serve()``; EOF reaches it in a collective whose peer has gone or in a
    hung teardown, so after ``grace_s`` for a normal exit the process ends itself."""
    import threading

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        time.sleep(grace_s)
        print(f"llem tensor-parallel follower: still running {grace_s:g} s after rank 0 stopped; exiting",
              file=sys.stderr, flush=True)
        os._exit(WATCHDOG_EXIT)

    threading.Thread(target=watch, name="llem-tp-stop", daemon=True).start()


class TensorParallelMixin:
    """PyTorchBackend's rank 0 side of tensor parallelism, and the follower loop."""

    # close(): how long followers get to exit after the stop, then after SIGTERM before SIGKILL
    stop_timeout_s = 30.0
    kill_timeout_s = 5.0

    def tp_world_size(self) -> int:
        import torch

        pt = self.config.pytorch
        if not pt.tp_plan:
            return 1
        if pt.tp_size:
            return pt.tp_size
        if self.config.device != "cpu" and torch.cuda.is_available():
            return torch.cuda.device_count()
        return 2

    def _start_tensor_parallel(self) -> None:
        import subprocess
        from datetime import timedelta

        import torch
        import torch.distributed as dist

        n = self.tp_world_size()
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(n),
                   LOCAL_WORLD_SIZE=str(n), LLEM_TP_CONFIG=json.dumps(self.config.model_dump(mode="json")),
                   # under rank 0's wait, so a follower that can exit by itself does before it is killed
                   LLEM_TP_STOP_GRACE_S=str(self.stop_timeout_s / 2))
        if self.config.device == "cpu" or not torch.cuda.is_available():
            # two CPU ranks on the same cores: one thread each keeps them from fighting
            env.setdefault("OMP_NUM_THREADS", "1")
        self._tp_in_sync = False  # until every rank has loaded
        for r in range(1, n):
            self._followers.append(subprocess.Popen(
                [sys.executable, *FOLLOWER_ARGS], stdin=subprocess.PIPE,
                env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), preexec_fn=_die_with_parent))
        import atexit

        # a failed job must not leave followers blocked in a collective until its timeout
        atexit.register(lambda: [p.kill() for p in self._followers if p.poll() is None])
        for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            os.environ[k] = env[k]
        os.environ.update(RANK="0", LOCAL_RANK="0")
        # set before the rendezvous: if it fails, close() still stops the followers already started
        self._world = n
        use_cuda = self.config.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(0)
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=0, world_size=n, timeout=timedelta(minutes=10))
        self.load_notes.append(f"tensor parallel over {n} ranks (rank 0 here, {n - 1} follower processes)")

    def _check_followers(self) -> None:
        dead = [p.returncode for p in self._followers if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a tensor-parallel follower exited with code {dead[0]} during loading")

    def _broadcast(self, msg) -> Any:
        import torch.distributed as dist

        box = [msg]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _gather(self, mine) -> list:
        import torch.distributed as dist

        out = [None] * self._world
        dist.all_gather_object(out, mine)
        return out

    def freeze_workers_heap(self) -> Optional[list[int]]:
        if self._world <= 1 or self._rank != 0:
            return None
        self._tp_in_sync = False
        self._broadcast(("gc_freeze", None))
        counts = self._gather(None)  # every follower answers once frozen: a barrier before the window
        self._tp_in_sync = True
        return counts[1:]

    def serve(self) -> None:
        """Follower loop (rank > 0): mirror rank 0's prepare/generate calls until told to stop."""
        while True:
            kind, arg = self._broadcast(None)
            if kind == "stop":
                return
            if kind == "gc_freeze":
                import gc

                # rank 0's freeze (llem/measure/gcfreeze.py), here without its bookkeeping: collect,
                # freeze what survives, answer the frozen count. Never released: the follower exits
                # when the job's passes are over.
                gc.collect()
                gc.freeze()
                self._gather(gc.get_freeze_count())
            elif kind == "prepare":
                self._batches.append(self._prepare_local(arg))
            elif kind == "generate":
                idx, phase = arg
                kw = self._generate_kw if phase == "full" else self._prefill_kw
                self._generate(self._batches[idx], kw, False)

    def _stop_followers(self) -> list[str]:
        """Stop every follower within ``stop_timeout_s + kill_timeout_s``; what went wrong comes back
        as warnings (by now the measurement is complete or the job has already failed)."""
        import subprocess
        import threading

        import torch
        import torch.distributed as dist

        errors: list[str] = []
        in_sync = self._tp_in_sync

        def teardown() -> None:
            try:
                if in_sync:
                    self._broadcast(("stop", None))
                    if str(getattr(self, "device", "")).startswith("cuda"):
                        # NCCL only enqueued the stop: let it reach the followers before the teardown
                        torch.cuda.synchronize()
                dist.destroy_process_group()
            except Exception as err:
                errors.append(f"{type(err).__name__}: {err}")

        # a thread, so rank 0's (collective) teardown runs while it waits for the followers
        worker = threading.Thread(target=teardown, name="llem-tp-teardown", daemon=True)
        worker.start()
        for p in self._followers:
            try:
                p.stdin.close()
            except (OSError, AttributeError):
                pass
        notes: list[str] = []
        deadline = time.monotonic() + self.stop_timeout_s
        for rank, p in enumerate(self._followers, start=1):
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                how = "terminated (SIGTERM)"
                p.terminate()
                try:
                    p.wait(timeout=self.kill_timeout_s)
                except subprocess.TimeoutExpired:
                    how = "killed (SIGKILL)"
                    p.kill()
                    p.wait()
                notes.append(f"tensor-parallel follower rank {rank} was still running {self.stop_timeout_s:g} s "
                             f"after the stop and was {how}")
                continue
            if p.returncode == WATCHDOG_EXIT:
                notes.append(f"tensor-parallel follower rank {rank} did not finish its shutdown within "
                             f"{self.stop_timeout_s / 2:g} s of the stop and exited by itself")
            elif p.returncode != 0:
                notes.append(f"tensor-parallel follower rank {rank} exited with code {p.returncode} at shutdown")
        worker.join(timeout=self.kill_timeout_s)
        if worker.is_alive():
            notes.append("rank 0's process-group teardown had not finished after the followers stopped; "
                         "left to process exit")
        notes.extend(f"tensor-parallel shutdown on rank 0 failed: {e}" for e in errors)
        return notes


def _follower_main() -> int:
    """Entry of a tensor-parallel follower: rebuild the config rank 0 sent, load, serve."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from llem.backends.pytorch.backend import PyTorchBackend
    from llem.config.schema import ExperimentConfig
    from llem.devices import DeviceSet

    cfg = ExperimentConfig.model_validate(json.loads(os.environ["LLEM_TP_CONFIG"]))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    _watch_for_stop(float(os.environ.get("LLEM_TP_STOP_GRACE_S", "15")))
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world, timeout=timedelta(minutes=10))
    be = PyTorchBackend(cfg, DeviceSet(unavailable_reason="tensor-parallel follower: rank 0 meters"))
    be._rank, be._world = rank, world
    be.load()
    be.serve()
    dist.destroy_process_group()
    return 0
