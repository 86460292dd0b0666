"""``llem run -m ... --live URL``: report a running study to ``llem serve`` as it goes.

The reporter lives in the study's process, never in a job's: a thread that every ``interval_s``
sends what changed (job states, the study's end) and, while a job runs, the power of that job's
GPUs, read here through NVML beside the job (one read per GPU per ``power_interval_s``; the job's
own sampler and its measured windows are untouched, and the job's ``timeseries.parquet`` stays
the record). On a cluster whose jobs run on other nodes the study's process sees no GPU and says
so instead of sending power.

Nothing here can stop or slow the study: the study only hands over state (under a lock, never
waiting on the network); when the server cannot be reached the reporter keeps the latest state
of every job (and a bounded window of power samples), retries with a growing pause, and says so
once on stderr. When the server is back it announces the study again with every job's state, so
the page catches up. Results are written to disk by the jobs as always: a lost server loses
nothing but the view. At the study's end the reporter tries for ``flush_timeout_s`` to deliver
the final state, then gives up with one line.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from typing import Optional, TextIO

from llem.results.manifest import JobEntry, StudyResult
from llem.results.remote import RemoteError, call

POWER_KEEP = 3600        # samples kept per GPU while the server is away (an hour at 1 Hz)
MAX_BACKOFF_S = 30.0


def _job(e: JobEntry) -> dict:
    return {"job_id": e.job_id, "status": e.status, "overrides": list(e.overrides)[:64], "started_at": e.started_at,
            "ended_at": e.ended_at, "error_type": (e.error_type or None) and e.error_type[:200],
            "error_message": (e.error_message or None) and e.error_message[:1000],
            "energy_measured": e.energy_measured, "energy_per_output_token_j": e.energy_per_output_token_j,
            "output_tokens_per_s": e.output_tokens_per_s, "gpu": e.gpu}


class PowerReader:
    """Reads the power of the GPUs a job was given (its CUDA_VISIBLE_DEVICES, else the study's)."""

    def __init__(self) -> None:
        self._sets: dict[Optional[str], object] = {}
        self.unavailable_reason: Optional[str] = None

    def read(self, visible: Optional[str]) -> list[tuple[int, float]]:
        from llem.devices import resolve_devices
        from llem.devices.nvml import nvml_module

        if visible not in self._sets:
            # a job given no GPU of its own sees what the study's process sees (CUDA_VISIBLE_DEVICES)
            self._sets[visible] = resolve_devices(visible)
        ds = self._sets[visible]
        if not ds:
            self.unavailable_reason = (ds.unavailable_reason or "no GPU visible to the study's process") \
                + " (the job's own sampler still records its power)"
            return []
        nv = nvml_module()
        out = []
        for d in ds:
            try:
                out.append((d.index, nv.nvmlDeviceGetPowerUsage(d.handle) / 1e3))
            except Exception:
                continue
        return out


class LiveReporter:
    def __init__(self, base_url: str, token: str, *, interval_s: float = 1.0, power_interval_s: float = 1.0,
                 flush_timeout_s: float = 10.0, max_backoff_s: float = MAX_BACKOFF_S,
                 stream: Optional[TextIO] = None, power: Optional[PowerReader] = None) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.interval_s = interval_s
        self.power_interval_s = power_interval_s
        self.flush_timeout_s = flush_timeout_s
        self.max_backoff_s = max_backoff_s
        self.stream = stream or sys.stderr
        self.power = power or PowerReader()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._create: dict = {}
        self._jobs: dict[str, dict] = {}
        self._dirty: set[str] = set()
        self._samples: dict[tuple[str, int], deque] = {}
        self._status: Optional[str] = None
        self._live_id: Optional[int] = None
        self._disabled: Optional[str] = None
        self._down_since: Optional[float] = None
        self._said_power = False
        self.delivered_final = False
        self.sent_batches = 0

    # --- called by the study (never blocks on the network) ---
    def begin(self, m: StudyResult) -> None:
        with self._lock:
            self._create = {"name": m.study_name[:300], "study_design_hash": m.study_design_hash[:64],
                            "created_at": m.created_at, "llem_version": m.llem_version[:64]}
            self._jobs = {e.job_id: _job(e) for e in m.jobs}
        self._thread = threading.Thread(target=self._run, name="llem-live", daemon=True)
        self._thread.start()

    def job(self, e: JobEntry) -> None:
        with self._lock:
            self._jobs[e.job_id] = _job(e)
            self._dirty.add(e.job_id)

    def finish(self, m: StudyResult, status: str) -> None:
        """Send every job's final state and the study's ``status``; wait at most ``flush_timeout_s``."""
        with self._lock:
            for e in m.jobs:
                self._jobs[e.job_id] = _job(e)
                self._dirty.add(e.job_id)
            self._status = status
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.flush_timeout_s + 2 * self.interval_s + 5)
        if not self.delivered_final and self._disabled is None:
            self._say(f"the live view at {self.base} did not get the study's final state (server unreachable); "
                      "the results are on disk: llem results push DIR --to URL uploads them")

    # --- the thread ---
    def _say(self, msg: str) -> None:
        print(f"llem: live: {msg}", file=self.stream, flush=True)

    def _sample_power(self) -> None:
        with self._lock:
            running = [(j["job_id"], j.get("gpu")) for j in self._jobs.values() if j["status"] == "running"]
        now = time.time()
        for job_id, gpu in running:
            for index, watts in self.power.read(gpu):
                self._samples.setdefault((job_id, index), deque(maxlen=POWER_KEEP)).append((now, watts))

    def _run(self) -> None:
        next_power = 0.0
        next_send = 0.0
        backoff = self.interval_s
        stop_at: Optional[float] = None
        while True:
            stopping = self._stop.wait(self.interval_s if stop_at is None else min(self.interval_s, 0.5))
            now = time.monotonic()
            if stopping and stop_at is None:
                stop_at = now + self.flush_timeout_s
                next_send = 0.0
            if not stopping and now >= next_power:
                try:
                    self._sample_power()
                except Exception as err:  # reading power must never end the reporter
                    self.power.unavailable_reason = f"{type(err).__name__}: {err}"
                next_power = now + self.power_interval_s
            if self._disabled is None and now >= next_send:
                try:
                    self._send(final=stopping)
                    if self._down_since is not None:
                        self._say(f"reconnected to {self.base} after {time.monotonic() - self._down_since:.0f} s; "
                                  "the page is up to date again")
                        self._down_since = None
                    backoff = self.interval_s
                    if stopping:
                        self.delivered_final = True
                        return
                except RemoteError as err:
                    if err.status in (401, 403):
                        self._disabled = str(err)
                        self._say(f"the server refused this study's reports ({err}); the study goes on without "
                                  "the live view")
                        return
                    elif err.status == 404:
                        self._live_id = None  # the server forgot the study (a new database): announce it again
                    else:
                        if self._down_since is None:
                            self._down_since = time.monotonic()
                            self._say(f"the live view is unreachable: {err}; the study goes on and keeps its "
                                      "results on disk; retrying")
                        backoff = min(self.max_backoff_s, backoff * 2)
                    next_send = now + backoff
            if stop_at is not None and now >= stop_at:
                return

    def _send(self, final: bool) -> None:
        with self._lock:
            if self._live_id is None:
                sent = dict(self._jobs)
                create = dict(self._create, jobs=list(sent.values()))
                dirty: list[dict] = []
            else:
                create = None
                dirty = [self._jobs[j] for j in sorted(self._dirty)]
                sent = {j["job_id"]: j for j in dirty}
            status = self._status if final else None
        if create is not None:
            _, ans = call("POST", f"{self.base}/api/v1/live", token=self.token,
                          body=json.dumps(create, allow_nan=False).encode(), timeout_s=10)
            self._live_id = int(ans["id"])
        power, taken = [], {}
        for (job_id, gpu), dq in list(self._samples.items()):
            if dq:
                samples = list(dq)
                taken[(job_id, gpu)] = len(samples)
                power.append({"job_id": job_id, "gpu_index": gpu, "samples": samples[-3600:]})
        reason = self.power.unavailable_reason if not self._said_power else None
        events = {"jobs": dirty, "power": power[:256], "status": status, "power_unavailable_reason":
                  reason and reason[:500]}
        if dirty or power or status or reason or create is not None:
            call("POST", f"{self.base}/api/v1/live/{self._live_id}/events", token=self.token,
                 body=json.dumps(events, allow_nan=False).encode(), timeout_s=10)
            self.sent_batches += 1
        with self._lock:
            # a job whose state changed while this batch was on its way stays to be sent
            self._dirty -= {k for k, j in sent.items() if self._jobs.get(k) is j}
        for key, n in taken.items():
            dq = self._samples[key]
            for _ in range(min(n, len(dq))):
                dq.popleft()
        if reason:
            self._said_power = True
