"""The short human summary printed after a run."""
from __future__ import annotations


def _fmt(v, spec=".4g", unit=""):
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def print_summary(result, path=None) -> None:
    r = result
    print(f"\n== llem: {r.backend} | {r.model} | {r.precision} | batch {r.batch} | {r.device} | {r.status}")
    if r.status != "completed":
        print(f"   failed: {r.error_type}: {r.error_message}")
    else:
        tps = r.stats.get("output_tokens_per_s")
        print(f"   {r.output_tokens} output tokens in {r.duration_s:.2f} s over {len(r.cycles)} cycles: "
              f"{_fmt(r.output_tokens_per_s, '.1f')} tok/s"
              + (f" (95% CI {tps.ci95_low:.1f}-{tps.ci95_high:.1f})" if tps and tps.ci95_low is not None else ""))
        e = r.energy
        if e.measured:
            s = r.stats.get("energy_per_output_token_j")
            ci = f" (95% CI {s.ci95_low:.4g}-{s.ci95_high:.4g})" if s and s.ci95_low is not None else ""
            label = " [ESTIMATED]" if e.estimated else ""
            adj = (f"{e.energy_adjusted_j:.2f} J baseline-adjusted" if e.energy_adjusted_j is not None
                   else f"baseline-adjusted n/a ({e.energy_adjusted_reason or 'no idle baseline'})")
            print(f"   energy{label}: {_fmt(e.energy_j, '.2f')} J raw, {adj} (meter {e.meter})")
            adj_tok = e.energy_adjusted_per_output_token_j
            print(f"   {_fmt(e.energy_per_output_token_j)} J/token{ci}, adjusted "
                  + (f"{adj_tok:.4g} J/token" if adj_tok is not None else "n/a"))
        else:
            print(f"   energy: not measured ({e.not_measured_reason})")
    for line in _quality_lines(getattr(r, "quality", None)):
        print(f"   {line}")
    for w in r.warnings:
        print(f"   warning: {w}")
    if path:
        print(f"   result: {path}")


def _quality_lines(q) -> list[str]:
    """The quality part (docs/quality.md): per task, score +- stderr, the evaluation's energy and
    quality_per_joule with its interval; why anything is missing."""
    if q is None:
        return []
    tag = " [MEANINGLESS: random weights]" if q.meaningless else ""
    lines = [f"quality ({q.status}, lm-eval {q.lm_eval_version or '?'}){tag}:"]
    if q.status == "failed" and not q.tasks:
        lines.append(f"  failed: {q.error_type}: {q.error_message}")
    for t in q.tasks:
        if t.status != "completed":
            lines.append(f"  {t.task}: failed: {t.error_type}: {t.error_message}")
            continue
        m = t.primary()
        s = f"  {t.task}: {m.name.split(',')[0]} {_fmt(m.value)}" if m is not None else f"  {t.task}:"
        if m is not None and m.stderr is not None:
            s += f" ± {m.stderr:.2g}"
        s += f" over {t.samples} samples" + (f" (chance {t.chance_accuracy:.2g})" if t.chance_accuracy else "")
        e = t.energy
        if e is not None and e.measured:
            s += f"; evaluation {e.energy_j:.4g} J" + (" [ESTIMATED]" if e.estimated else "")
        elif e is not None:
            s += f"; evaluation energy n/a ({e.not_measured_reason})"
        lines.append(s)
        if t.quality_per_joule is not None:
            ci = (f" (95% CI {t.quality_per_joule_ci95_low:.4g}-{t.quality_per_joule_ci95_high:.4g})"
                  if t.quality_per_joule_ci95_low is not None else "")
            lines.append(f"    quality_per_joule {t.quality_per_joule:.4g} correct/J{ci}"
                         + (f"; {t.quality_per_joule_reason}" if t.quality_per_joule_reason else ""))
        elif t.quality_per_joule_reason:
            lines.append(f"    quality_per_joule n/a: {t.quality_per_joule_reason}")
    return lines
