"""Progress lines while a study runs (stderr) and the summary table at its end (stdout)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from llem.results.manifest import JobEntry, StudyResult


def varying(overrides_per_job: list[list[str]]) -> tuple[set[str], list[str]]:
    """The override keys that differ between jobs, and the overrides common to all jobs."""
    values: dict[str, set[str]] = {}
    for ovr in overrides_per_job:
        for o in ovr:
            k, _, v = o.partition("=")
            values.setdefault(k, set()).add(v)
    n = len(overrides_per_job)
    keys = {k for k, vs in values.items() if len(vs) > 1 or sum(any(o.partition("=")[0] == k for o in ovr)
                                                             for ovr in overrides_per_job) < n}
    common = [o for o in (overrides_per_job[0] if overrides_per_job else []) if o.partition("=")[0] not in keys]
    return keys, common


def shown(overrides: list[str], keys: Optional[set[str]]) -> str:
    if keys is None:
        return " ".join(overrides) or "(defaults)"
    return " ".join(o for o in overrides if o.partition("=")[0] in keys) or "(defaults)"


def _dur(s: Optional[float]) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class Progress:
    """``[3/8 done, 1 failed, 4 left | ETA 2m10s] running 0004: batch=8`` on stderr.

    The ETA is the mean duration of the jobs this process ran, times the jobs left, plus
    their cooldown gaps.
    """

    def __init__(self, total: int, *, already_done: int = 0, cooldown_s: float = 0.0, quiet: bool = False,
                 stream: Optional[TextIO] = None, keys: Optional[set[str]] = None) -> None:
        self.keys = keys
        self.total = total
        self.done = already_done
        self.failed = 0
        self.cooldown_s = cooldown_s
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self._durations: list[float] = []
        self._t0: dict[str, float] = {}

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed

    def eta_s(self) -> Optional[float]:
        if not self._durations:
            return None
        mean = sum(self._durations) / len(self._durations)
        return self.left * mean + max(0, self.left - 1) * self.cooldown_s

    def _head(self) -> str:
        eta = self.eta_s()
        return (f"[{self.done}/{self.total} done, {self.failed} failed, {self.left} left"
                + (f" | ETA {_dur(eta)}" if eta is not None and self.left else "") + "]")

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"llem study {self._head()} {msg}", file=self.stream, flush=True)

    def start(self, job: JobEntry) -> None:
        self._t0[job.job_id] = time.monotonic()
        self.say(f"running {job.job_id}: {shown(job.overrides, self.keys)}")

    def end(self, job: JobEntry) -> None:
        t0 = self._t0.pop(job.job_id, None)
        if t0 is not None:
            self._durations.append(time.monotonic() - t0)
        if job.status == "completed":
            self.done += 1
            self.say(f"{job.job_id} completed")
        else:
            self.failed += 1
            msg = (job.error_message or "")[:200]
            self.say(f"{job.job_id} {job.status}: {job.error_type}: {msg}")


def _fmt(v: Optional[float], spec: str = ".4g") -> str:
    return "" if v is None else f"{v:{spec}}"


def _jpt(j: JobEntry) -> str:
    if j.status != "completed":
        return ""
    if not j.energy_measured or j.energy_per_output_token_j is None:
        return "not measured"
    ci = j.energy_per_output_token_ci95
    # an estimate (CodeCarbon's TDP model) must never read like a counter measurement
    est = " (estimated)" if j.energy_estimated else ""
    if ci and ci[0] is not None and ci[1] is not None:
        return f"{j.energy_per_output_token_j:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]{est}"
    return f"{j.energy_per_output_token_j:.4g}{est}"


def summary_table(m: StudyResult) -> str:
    """One row per job: key config, J/token with its 95% CI, tokens/s, status."""
    # baseline-adjusted J/token beside the raw one whenever any job has an idle baseline
    adjusted = any(j.energy_adjusted_per_output_token_j is not None for j in m.jobs)
    rows = [("job", "config", "J/token [95% CI]") + (("adj. J/token",) if adjusted else ()) + ("tok/s", "status")]
    keys, common = varying([j.overrides for j in m.jobs])
    for j in sorted(m.jobs, key=lambda j: j.index):
        conf = shown(j.overrides, keys) if keys else f"{j.backend} {j.model} {j.precision} batch={j.batch}"
        adj = (_fmt(j.energy_adjusted_per_output_token_j) if j.status == "completed" else "",) if adjusted else ()
        rows.append((j.job_id, conf, _jpt(j)) + adj + (_fmt(j.output_tokens_per_s, ".1f"), j.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[1] = min(widths[1], 60)
    lines = []
    for k, r in enumerate(rows):
        cells = [r[i][:widths[i]].ljust(widths[i]) for i in range(len(r))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    s = m.summary
    tail = (f"{s.get('completed', 0)} completed, {s.get('failed', 0)} failed, {s.get('lost', 0)} lost, "
            f"{s.get('pending', 0) + s.get('running', 0)} not run, of {s.get('jobs', len(m.jobs))} jobs")
    out = [f"== llem study {m.study_name}: {tail}"]
    if common:
        out.append("all jobs: " + " ".join(common))
    out += lines
    bad = [j for j in m.jobs if j.status in ("failed", "lost")]
    if bad:
        out.append("failures:")
        for j in sorted(bad, key=lambda j: j.index):
            where = f" (log: {j.log_path})" if j.log_path else ""
            out.append(f"  {j.job_id} {shown(j.overrides, keys)}: {j.status}: {j.error_type}: {j.error_message}{where}")
    warned = [f"{j.job_id} ({j.warnings})" for j in sorted(m.jobs, key=lambda j: j.index) if j.warnings]
    if warned:
        out.append("measurement warnings (see each result.json): " + ", ".join(warned))
    out.append(f"manifest: {m.study_dir}/manifest.json")
    return "\n".join(out)
