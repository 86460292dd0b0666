"""Where does batch-1 ``generate`` time wander on a GPU host? (issue 3, item 10)

At batch 1 with the static cache (CUDA graphs), a call of the reference workload takes 0.34-0.47 s
on the H100 machines, and consecutive calls sit in one of two levels for seconds at a time while
the SM clock stays flat. This script runs the bare ``generate`` loop of
``gpu_validation.py`` (same model, inputs and static cache) without llem, and records for every
call its duration and the CPU the main thread ran on; a separate monitor process (no GIL shared
with the loop) samples every thread's CPU and CPU time and every CPU's steal time. Phases:

- ``free:SECONDS``: the scheduler places the main thread;
- ``pin:SECONDS``: the main thread is pinned to the CPU it was on when the phase began (only that
  thread: ``sched_setaffinity`` on Linux acts on the calling thread);

a phase lasts SECONDS and at least ``--min-calls`` calls (default 4, the fewest the summary can
describe), so a slow or loaded host gives a longer phase, never one too short to summarise;

then it reports, per phase, the calls' spread and how much of it follows the CPU, the steal time
and the other threads' CPU use, and what an ABBA comparison of two identical arms would give for
several window lengths (the same series cut into llem/bare/bare/llem windows): the noise floor of
``gpu_validation.py``'s overhead estimate on this machine.

    python benchmarks/overhead/host_jitter.py --out DIR [--phase free:90 --phase pin:90 ...]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_libc = ctypes.CDLL(None, use_errno=True)


def current_cpu() -> int:
    return int(_libc.sched_getcpu())


# --------------------------------------------------------------------------------------------
# monitor (its own process)
# --------------------------------------------------------------------------------------------
def _task_stat(pid: int, tid: str) -> tuple[str, int, int]:
    """(name, cpu, utime+stime ticks) of one thread; the name may hold spaces and parentheses."""
    raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    name = raw[raw.index("(") + 1:raw.rindex(")")]
    f = raw[raw.rindex(")") + 2:].split()
    # fields after the name: state is field 3 of stat(5), so index = field - 3
    return name, int(f[39 - 3]), int(f[14 - 3]) + int(f[15 - 3])


def _steal() -> dict[str, int]:
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            f = line.split()
            out[f[0][3:]] = int(f[8]) if len(f) > 8 else 0
    return out


def monitor(pid: int, path: str, interval_s: float) -> int:
    with open(path, "w") as fh:
        while True:
            try:
                os.kill(pid, 0)
            except OSError:
                return 0
            t = time.perf_counter()  # CLOCK_MONOTONIC: the same clock as the loop's stamps
            tasks = {}
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    try:
                        tasks[tid] = _task_stat(pid, tid)
                    except (OSError, ValueError, IndexError):
                        pass  # a thread that ended between listing and reading
            except OSError:
                return 0
            fh.write(json.dumps({"t": t, "tasks": tasks, "steal": _steal()}) + "\n")
            fh.flush()
            time.sleep(interval_s)


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
def run_phases(loop, phases: list[tuple[str, float]], min_calls: int = 4) -> list[dict[str, Any]]:
    """Each phase runs until SECONDS have passed and it has made at least ``min_calls`` calls."""
    everyone = os.sched_getaffinity(0)
    out = []
    for kind, seconds in phases:
        pinned = None
        if kind == "pin":
            pinned = current_cpu()
            os.sched_setaffinity(0, {pinned})
        calls = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(calls) < min_calls:
            c0 = current_cpu()
            t = time.perf_counter()
            loop.call()
            d = time.perf_counter() - t
            calls.append({"t": t, "s": d, "cpu_start": c0, "cpu_end": current_cpu()})
        os.sched_setaffinity(0, everyone)
        out.append({"kind": kind, "seconds": seconds, "pinned_cpu": pinned, "calls": calls})
        print(f"phase {kind}:{seconds:g}: {len(calls)} calls, mean {statistics.mean(c['s'] for c in calls):.4f} s",
              flush=True)
    return out


def abba_floor(series: list[float], window_calls: int) -> dict[str, Any]:
    """Cut one arm's series into consecutive windows of ``window_calls`` calls labelled llem, bare,
    bare, llem: the blocks' relative differences show what ABBA gives when both arms are the same."""
    w = window_calls
    diffs = []
    for k in range(len(series) // (4 * w)):
        s = series[4 * w * k:4 * w * (k + 1)]
        a = sum(s[:w]) + sum(s[3 * w:])
        b = sum(s[w:3 * w])
        diffs.append(a / b - 1)
    if len(diffs) < 2:
        return {"window_calls": w, "blocks": len(diffs)}
    sd = statistics.stdev(diffs)
    return {"window_calls": w, "blocks": len(diffs), "mean_rel": statistics.mean(diffs), "sd_rel": sd,
            # a gpu_validation.py run of 8 windows a side of this length: 4 blocks, t(3) = 3.18
            "run_of_4_blocks_ci_half_width": 3.182 * sd / 2}


def summarise(phases: list[dict[str, Any]], samples: list[dict[str, Any]], main_tid: str) -> list[dict[str, Any]]:
    summary = []
    for ph in phases:
        calls = ph["calls"]
        if len(calls) < 4:
            summary.append({"kind": ph["kind"], "calls": len(calls)})
            continue
        s = [c["s"] for c in calls]
        mean = statistics.mean(s)
        lag1 = statistics.correlation(s[:-1], s[1:])
        by_cpu: dict[int, list[float]] = {}
        for c in calls:
            if c["cpu_start"] == c["cpu_end"]:
                by_cpu.setdefault(c["cpu_start"], []).append(c["s"])
        t0, t1 = calls[0]["t"], calls[-1]["t"] + calls[-1]["s"]
        inside = [x for x in samples if t0 <= x["t"] <= t1]
        threads: dict[str, dict[str, Any]] = {}
        steal = None
        if len(inside) >= 2:
            a, b = inside[0], inside[-1]
            span = b["t"] - a["t"]
            tick = os.sysconf("SC_CLK_TCK")
            for tid, (name, _, ticks) in b["tasks"].items():
                if tid in a["tasks"]:
                    busy = (ticks - a["tasks"][tid][2]) / tick / span
                    if busy > 0.005 or tid == main_tid:
                        threads[f"{name} ({'main' if tid == main_tid else tid})"] = round(busy, 4)
            steal = {cpu: round((b["steal"][cpu] - a["steal"].get(cpu, 0)) / tick / span, 4)
                     for cpu in b["steal"] if b["steal"][cpu] - a["steal"].get(cpu, 0) > 0}
        summary.append({
            "kind": ph["kind"], "pinned_cpu": ph["pinned_cpu"], "calls": len(calls), "mean_s": mean,
            "sd_rel": statistics.stdev(s) / mean, "min_s": min(s), "max_s": max(s),
            "p10_s": statistics.quantiles(s, n=10)[0], "p90_s": statistics.quantiles(s, n=10)[-1],
            # persistence: near 0 for call-to-call noise, near 1 for levels that last many calls
            "lag1_autocorrelation": lag1,
            "migrated_calls": sum(c["cpu_start"] != c["cpu_end"] for c in calls),
            "by_cpu": {str(k): {"calls": len(v), "mean_s": statistics.mean(v)} for k, v in sorted(by_cpu.items())},
            "threads_busy_share_of_one_cpu": threads,
            "steal_share_of_one_cpu_by_cpu": steal,
            "abba_same_arm": [abba_floor(s, w) for w in (1, 2, 3, 6, 13)],
        })
    return summary


def topology() -> dict[str, Any]:
    nodes = {}
    for d in sorted(Path("/sys/devices/system/node").glob("node[0-9]*")):
        nodes[d.name] = (d / "cpulist").read_text().strip()
    siblings = {}
    for d in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")):
        f = d / "topology" / "thread_siblings_list"
        if f.exists():
            siblings[d.name] = f.read_text().strip()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = None
    return {"numa_nodes": nodes, "thread_siblings": siblings, "affinity": sorted(os.sched_getaffinity(0)),
            "lscpu": lscpu}


def parse_phase(text: str) -> tuple[str, float]:
    kind, _, sec = text.partition(":")
    try:
        seconds = float(sec)
    except ValueError:
        seconds = -1.0
    if kind not in ("free", "pin") or seconds <= 0:
        raise argparse.ArgumentTypeError(f"--phase={text!r}: free:SECONDS or pin:SECONDS (SECONDS > 0)")
    return kind, seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--phase", action="append", type=parse_phase, default=None,
                   help="free:SECONDS or pin:SECONDS, in order (default free:90 pin:90 free:60)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--interval-s", type=float, default=0.05, help="monitor sampling interval")
    p.add_argument("--min-calls", type=int, default=4,
                   help="a phase goes on past its SECONDS until it has this many calls (default 4)")
    p.add_argument("--cpu", action="store_true", help="tiny CPU model (the test suite's mode)")
    p.add_argument("--resummarise", action="store_true",
                   help="run nothing: recompute the summary from OUT's host_jitter.json and monitor.jsonl[.gz]")
    p.add_argument("--monitor", nargs=2, metavar=("PID", "FILE"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.batch < 1 or a.interval_s <= 0:
        p.error(f"--batch={a.batch} and --interval-s={a.interval_s:g}: a batch of 1 or more, an interval above 0")
    if a.min_calls < 4:
        p.error(f"--min-calls={a.min_calls}: 4 or more (the summary needs 4 calls)")
    if a.monitor:
        return monitor(int(a.monitor[0]), a.monitor[1], a.interval_s)
    if a.resummarise:
        return resummarise(Path(a.out))
    phases = a.phase or [("free", 90.0), ("pin", 90.0), ("free", 60.0)]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    mon_file = out / "monitor.jsonl"
    mon = subprocess.Popen([sys.executable, __file__, "--out", str(out), "--interval-s", str(a.interval_s),
                            "--monitor", str(os.getpid()), str(mon_file)])
    try:
        from benchmarks.gpu_validation.gpu_validation import BareLoop, parse_args

        vargs = ["--out", str(out), "--batches", str(a.batch), "--warmup", "3", "--static-cache"]
        vargs += ["--cpu"] if a.cpu else []
        loop = BareLoop(parse_args(vargs), a.batch, None)
        phase_data = run_phases(loop, phases, a.min_calls)
    finally:
        mon.terminate()
        mon.wait()
    samples = [json.loads(line) for line in mon_file.read_text().splitlines() if line.strip()]
    report = {"command": "python benchmarks/overhead/host_jitter.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "main_tid": str(os.getpid()), "topology": topology(),
              "summary": summarise(phase_data, samples, str(os.getpid())), "phases": phase_data}
    (out / "host_jitter.json").write_text(json.dumps(report, indent=1))
    show(report["summary"])
    return 0


def resummarise(out: Path) -> int:
    """The summary again from a run's saved files, e.g. one committed under docs/validation/."""
    import gzip

    rep_file, mon = out / "host_jitter.json", out / "monitor.jsonl"
    mon = mon if mon.exists() else out / "monitor.jsonl.gz"
    if not rep_file.is_file() or not mon.is_file():
        print(f"--out={str(out)!r}: needs host_jitter.json and monitor.jsonl (or .gz) there", file=sys.stderr)
        return 2
    if mon.suffix == ".gz":
        with gzip.open(mon, "rt") as fh:
            text = fh.read()
    else:
        text = mon.read_text()
    samples = [json.loads(line) for line in text.splitlines() if line.strip()]
    rep = json.loads(rep_file.read_text())
    # before main_tid was saved: the monitor's first sample, taken before the loop started any thread
    main_tid = rep.get("main_tid") or next(iter(samples[0]["tasks"]))
    show(summarise(rep["phases"], samples, main_tid))
    return 0


def show(summary: list[dict[str, Any]]) -> None:
    for s in summary:
        print(json.dumps({k: v for k, v in s.items() if k != "abba_same_arm"}))
        for f in s.get("abba_same_arm", []):
            print("   ", json.dumps(f))


if __name__ == "__main__":
    raise SystemExit(main())
