"""Target: planning scales. ``llem run -m <10,000-job grid> --dry-run`` takes at most 1 s more
than the same command with a 1-job grid (the start-up: imports, Hydra, one compose).

Measures whole commands (fresh ``llem`` processes: imports, Hydra, planning, validating and
estimating every job, printing) for a 1-job, a 1,000-job and a 10,000-job grid over the same
10 combinations of config groups, and, in-process, the planning alone. Prints medians of a
few interleaved repeats and exits 1 if the 10,000-job grid misses the target.

    python benchmarks/cpu_micro/dryrun_speed.py [--repeats 5] [--target-s 1.0]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

MODELS = "model=tiny,llama-3.2-1b,llama-3.1-8b,mistral-7b,qwen2.5-7b"
# 5 models x 2 precisions x 10 batch sizes x N output lengths: 10 group combinations each
GRIDS = {
    1: ["model=tiny", "precision=fp32", "batch=1", "output_len=8"],
    1_000: [MODELS, "precision=fp32,bf16", "batch=range(1,11)", "output_len=range(8,88,8)"],
    10_000: [MODELS, "precision=fp32,bf16", "batch=range(1,11)", "output_len=range(8,808,8)"],
}


def dry_run_s(grid: list[str], jobs: int, cwd: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "llem", "run", "-m", *grid, "--dry-run"], cwd=cwd,
                       capture_output=True, text=True)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"dry run failed: {r.stderr}")
    rows = sum(1 for line in r.stdout.splitlines() if line[:4].isdigit())
    assert rows == jobs, (rows, jobs)
    return took


def planning_s(grid: list[str], jobs: int) -> tuple[float, int]:
    """Seconds to plan the grid in-process, and how many full Hydra composes that took."""
    from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer

    with standalone_composer() as c:  # fresh composer: no cache carried between repeats
        t0 = time.perf_counter()
        plan = plan_grid(grid, c, ExecutionOptions())
        took = time.perf_counter() - t0
        assert len(plan.jobs) == jobs
    return took, c.full_composes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target-s", type=float, default=1.0, help="10,000 jobs: seconds beyond the 1-job start-up")
    a = ap.parse_args()
    e2e: dict[int, list[float]] = {n: [] for n in GRIDS}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.repeats):  # interleaved: a load change hits every grid alike
            for n, grid in GRIDS.items():
                e2e[n].append(dry_run_s(grid, n, d))
    med = {n: statistics.median(t) for n, t in e2e.items()}
    for n in GRIDS:
        extra = "" if n == 1 else f", {med[n] - med[1]:.2f} s beyond start-up"
        print(f"{n:>6,}-job dry run, end to end (fresh process): median {med[n]:.2f} s, min {min(e2e[n]):.2f} s{extra}")
    for n in (1_000, 10_000):
        runs = [planning_s(GRIDS[n], n) for _ in range(a.repeats)]
        print(f"{n:>6,}-job planning alone ({runs[0][1]} Hydra composes for the 10 combinations + {n:,} validated, "
              f"hashed configs): median {statistics.median(t for t, _ in runs):.2f} s")
    beyond = med[10_000] - med[1]
    ok = beyond <= a.target_s
    print(f"target: 10,000 jobs within {a.target_s:g} s of the start-up: {'met' if ok else 'MISSED'} ({beyond:.2f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
