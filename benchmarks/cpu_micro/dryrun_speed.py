"""Target: ``llem run -m <1,000-job grid> --dry-run`` in well under 2 s.

Measures the whole command (a fresh ``llem`` process: imports, Hydra, planning, validating and
estimating every job, printing) and, in-process, the planning alone. Prints the median of a
few repeats and exits 1 if the end-to-end median misses the target.

    python benchmarks/cpu_micro/dryrun_speed.py [--repeats 5] [--target-s 2.0]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

# 5 models x 2 precisions x 10 batch sizes x 10 output lengths = 1,000 jobs, 10 group combinations
GRID = ["model=tiny,llama-3.2-1b,llama-3.1-8b,mistral-7b,qwen2.5-7b", "precision=fp32,bf16", "batch=range(1,11)",
        "output_len=range(8,88,8)"]


def end_to_end(repeats: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "llem", "run", "-m", *GRID, "--dry-run"], cwd=d,
                               capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"dry run failed: {r.stderr}")
            rows = sum(1 for line in r.stdout.splitlines() if line[:4].isdigit())
            assert rows == 1000, rows
    return times


def planning(repeats: int) -> list[float]:
    from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer

    times = []
    for _ in range(repeats):
        with standalone_composer() as c:  # fresh composer: no cache carried between repeats
            t0 = time.perf_counter()
            plan = plan_grid(GRID, c, ExecutionOptions())
            times.append(time.perf_counter() - t0)
            assert len(plan.jobs) == 1000 and c.full_composes == 10
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target-s", type=float, default=2.0)
    a = ap.parse_args()
    e2e = end_to_end(a.repeats)
    plan = planning(a.repeats)
    med = statistics.median(e2e)
    print(f"1,000-job dry run, end to end (fresh process): median {med:.2f} s, min {min(e2e):.2f} s "
          f"over {a.repeats} runs")
    print(f"planning alone (10 Hydra composes + 1,000 validated configs): median {statistics.median(plan):.2f} s")
    print(f"target < {a.target_s:g} s: {'met' if med < a.target_s else 'MISSED'}")
    return 0 if med < a.target_s else 1


if __name__ == "__main__":
    raise SystemExit(main())
