"""Where a study's time went (issue 30): each job's wall time against its measured windows, and
the study's wall time against the targets.

Reads a finished study directory (``manifest.json`` and each job's ``result.json``); measures
nothing itself. Per job: wall time (the manifest's ``duration_s``, process start to result),
measured windows (the sum of the cycles' ``duration_s``) and their share of the wall time, the
start-up and load (``methodology.load``), the idle baseline, the warm-up, the passes outside the
windows (``methodology.outside_windows``), whether a vLLM engine was reused
(``hydra.launcher.share_engine``), the latency pass's throughput over the windows'
(``latency_throughput_ratio``) and the device's peak memory. The study: first job start to last
job end, and how many vLLM engines were started.

Targets checked (issue 30): windows >= 75% of each PyTorch job's wall time and >= 60% of each
vLLM job's; the study in <= 600 s; latency-pass throughput within 5% of the windows'; with
``share_engine`` one engine start per group.

    llem run -m backend=vllm,pytorch batch=1,8 model=llama-3.2-1b precision=bf16 \\
        dataset.input_len=128 output_len=128 energy=nvml hydra.launcher.share_engine=true hydra.sweep.dir=STUDY
    python benchmarks/gpu_validation/study_time.py STUDY --out docs/validation/study-time-h100
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

WINDOW_SHARE_TARGET = {"pytorch": 0.75, "vllm": 0.60}
STUDY_WALL_TARGET_S = 600.0
LATENCY_RATIO_LIMIT = 0.05


def _ts(v: Optional[str]) -> Optional[float]:
    return datetime.fromisoformat(v).timestamp() if v else None


def job_row(study: Path, entry: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"job": entry["job_id"], "backend": entry.get("backend"), "batch": entry.get("batch"),
                           "status": entry.get("status"), "wall_s": entry.get("duration_s")}
    path = study / entry["result_path"] if entry.get("result_path") else None
    if path is None or not path.is_file():
        row["error"] = entry.get("error_message")
        return row
    r = json.loads(path.read_text())
    mm = r.get("measurement_methodology") or {}
    windows_s = sum(c["duration_s"] for c in r.get("cycles") or [])
    load = mm.get("load") or {}
    base = mm.get("baseline") or {}
    warm = mm.get("warmup") or {}
    outside = mm.get("outside_windows") or {}
    backend = mm.get("backend") or {}
    lat = r.get("latency") or {}
    mem = r.get("memory") or {}
    wall = row["wall_s"]
    row.update({
        "windows_s": windows_s, "cycles": len(r.get("cycles") or []),
        "calls_per_window": (mm.get("window") or {}).get("calls_per_window"),
        "window_share": windows_s / wall if wall else None,
        "startup_s": load.get("startup_s"), "load_s": load.get("load_time_s"),
        "baseline_s": (base.get("duration_s") or 0) + ((base.get("settle") or {}).get("waited_s") or 0)
        if base.get("enabled") else None, "baseline_cached": base.get("cached"),
        "warmup_s": sum(warm.get("durations_s") or []) or None, "warmup_calls": warm.get("runs"),
        "latency_pass_s": outside.get("latency_pass_s"), "phase_split_s": outside.get("phase_split_s"),
        "outside_share_of_windows": outside.get("share_of_measured_windows"),
        "engine_reused": backend.get("engine_reused"), "engine_sharing": backend.get("engine_sharing"),
        "latency_throughput_ratio": lat.get("latency_throughput_ratio"),
        "output_tokens_per_s": r.get("output_tokens_per_s"),
        "energy_per_output_token_j": (r.get("energy") or {}).get("energy_per_output_token_j"),
        "quantisation_bound_max": mm.get("quantisation_bound_max"),
        "device_peak_used_bytes": mem.get("device_peak_used_bytes"),
        "gpus": [g.get("name") for g in (r.get("environment") or {}).get("gpus") or [] if isinstance(g, dict)],
        "warnings": r.get("warnings"),
    })
    target = WINDOW_SHARE_TARGET.get(row["backend"] or "")
    row["window_share_target"] = target
    row["window_share_met"] = None if target is None or row["window_share"] is None else row["window_share"] >= target
    ratio = row["latency_throughput_ratio"]
    row["latency_ratio_within_5pct"] = None if ratio is None else abs(ratio - 1) <= LATENCY_RATIO_LIMIT
    return row


def summarise(study: Path) -> dict[str, Any]:
    m = json.loads((study / "manifest.json").read_text())
    rows = [job_row(study, e) for e in m["jobs"]]
    starts = [_ts(e.get("started_at")) for e in m["jobs"] if e.get("started_at")]
    ends = [_ts(e.get("ended_at")) for e in m["jobs"] if e.get("ended_at")]
    wall = max(ends) - min(starts) if starts and ends else None
    vllm = [r for r in rows if r["backend"] == "vllm" and "windows_s" in r]
    engine_starts = sum(1 for r in vllm if r.get("engine_reused") is False)
    share = any("share_engine=true" in a for a in m.get("command_args") or [])
    return {
        "study": str(study), "launcher": m.get("launcher"), "share_engine": share, "command_args": m.get("command_args"),
        "jobs": rows,
        "study_wall_s": wall, "study_wall_note": "first job's start to last job's end, from the manifest (the "
        "command's own start-up and planning before the first job are not in it)",
        "windows_s": sum(r.get("windows_s") or 0 for r in rows),
        "vllm_engine_starts": engine_starts if vllm else None,
        "checks": {
            "study_within_600s": None if wall is None else wall <= STUDY_WALL_TARGET_S,
            "window_shares_met": [r["window_share_met"] for r in rows],
            "latency_ratios_within_5pct": [r.get("latency_ratio_within_5pct") for r in rows],
            "one_vllm_engine_start": (engine_starts == 1) if vllm and share else None,
        },
    }


def _f(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(rep: dict[str, Any], command: str) -> str:
    lines = [f"# Where a study's time went", "", f"Reproduce: `{command}`", "",
             "| job | backend | batch | wall s | windows s | share (target) | start-up s | load s | baseline s | warm-up s "
             "| latency pass s | phase split s | engine reused | latency / windows tok/s | tok/s | J/token |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["jobs"]:
        lines.append(
            f"| {r['job']} | {r['backend']} | {r['batch']} | {_f(r.get('wall_s'))} | {_f(r.get('windows_s'))} | "
            f"{_f(r.get('window_share'), '.1%')} ({_f(r.get('window_share_target'), '.0%')}) | {_f(r.get('startup_s'))} | "
            f"{_f(r.get('load_s'), '.2f')} | {_f(r.get('baseline_s'))} | {_f(r.get('warmup_s'))} | "
            f"{_f(r.get('latency_pass_s'))} | {_f(r.get('phase_split_s'))} | "
            f"{r.get('engine_reused', 'n/a')} | {_f(r.get('latency_throughput_ratio'), '.3f')} | "
            f"{_f(r.get('output_tokens_per_s'))} | {_f(r.get('energy_per_output_token_j'), '.4g')} |")
    lines += ["", f"Study wall time: {_f(rep['study_wall_s'])} s ({rep['study_wall_note']}); measured windows "
              f"{_f(rep['windows_s'])} s; vLLM engine starts: {rep['vllm_engine_starts']}.", "",
              "Checks: " + ", ".join(f"{k}={v}" for k, v in rep["checks"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="a study directory (holds manifest.json)")
    ap.add_argument("--out", type=Path, default=None, help="write study_time.json and study_time.md here")
    a = ap.parse_args(argv)
    if not (a.study / "manifest.json").is_file():
        print(f"study_time: {a.study} holds no manifest.json; give a study directory", file=sys.stderr)
        return 2
    rep = summarise(a.study)
    command = "python benchmarks/gpu_validation/study_time.py " + " ".join(sys.argv[1:] if argv is None else argv)
    md = markdown(rep, command)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "study_time.json").write_text(json.dumps(rep, indent=2, default=str))
        (a.out / "study_time.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
