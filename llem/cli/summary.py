"""The short human summary printed after a run.

Every headline number is the result's ``stats`` value (the ratio of totals over the measured
cycles) with the 95% CI of that value, written ``[a, b]``, so the point always sits inside it."""
from __future__ import annotations

from llem.results.fmt import fmt_ci, fmt_num

SCOPE = {"gpu": "GPU", "host": "host CPU+DRAM"}


def _metric(r, name: str, fallback, unit: str) -> str:
    """``value unit, 95% CI [a, b]`` of a headline metric (its CV across cycles beside it)."""
    st = r.stats.get(name)
    v = st.value if st is not None and st.value is not None else fallback
    out = f"{fmt_num(v)} {unit}"
    if st is not None and st.value is not None:
        ci = fmt_ci(st.ci95_low, st.ci95_high, st.value)
        if ci:
            out += f", 95% CI {ci}"
        if st.cv is not None:
            out += f" (cycles vary {st.cv:.1%})"
    return out


def print_summary(result, path=None) -> None:
    r = result
    print(f"\n== llem: {r.backend} | {r.model} | {r.precision} | batch {r.batch} | {r.device} | {r.status}")
    if r.status != "completed":
        print(f"   failed: {r.error_type}: {r.error_message}")
    else:
        print(f"   {r.output_tokens} output tokens in {r.duration_s:.2f} s over {len(r.cycles)} cycles")
        print(f"   throughput: {_metric(r, 'output_tokens_per_s', r.output_tokens_per_s, 'tok/s')}")
        e = r.energy
        if e.measured:
            label = " [ESTIMATED]" if e.estimated else ""
            scope = SCOPE.get(e.scope or "", e.scope or "")
            adj = (f"{e.energy_adjusted_j:.2f} J baseline-adjusted" if e.energy_adjusted_j is not None
                   else f"baseline-adjusted n/a ({e.energy_adjusted_reason or 'no idle baseline'})")
            print(f"   energy{label}: {fmt_num(e.energy_j)} J raw, {adj} (meter {e.meter}"
                  + (f", {scope}" if scope else "") + ")")
            print(f"   energy per token{label}: "
                  f"{_metric(r, 'energy_per_output_token_j', e.energy_per_output_token_j, 'J/token')}")
            if e.energy_adjusted_per_output_token_j is not None:
                print(f"   adjusted energy per token: {_metric(r, 'energy_adjusted_per_output_token_j', e.energy_adjusted_per_output_token_j, 'J/token')}")
        else:
            print(f"   energy: not measured ({e.not_measured_reason})")
        m = r.measurement_methodology or {}
        if "steady_state_claimed" in m:
            if m["steady_state_claimed"]:
                print("   steady state: claimed (warm-up ran; the cycles show no trend, no half-to-half shift, "
                      "no outlier)")
            elif str(m.get("steady_state", "")).startswith("not steady state: the warm-up ran, but"):
                print("   steady state: not claimed: the cycles fail the steady-state test (the 'not steady' "
                      "warnings below say how)")
            else:
                why = str(m.get("steady_state", "")).removeprefix("not steady state: ")
                print(f"   steady state: not claimed: {why[:150] + ('...' if len(why) > 150 else '')}")
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
        s = f"  {t.task}: {m.name.split(',')[0]} {fmt_num(m.value)}" if m is not None else f"  {t.task}:"
        if m is not None and m.stderr is not None:
            s += f" ± {m.stderr:.2g}"
        s += f" over {t.samples} samples" + (f" (chance {t.chance_accuracy:.2g})" if t.chance_accuracy else "")
        e = t.energy
        if e is not None and e.measured:
            s += f"; evaluation {fmt_num(e.energy_j)} J" + (" [ESTIMATED]" if e.estimated else "")
        elif e is not None:
            s += f"; evaluation energy n/a ({e.not_measured_reason})"
        lines.append(s)
        if t.quality_per_joule is not None:
            ci = fmt_ci(t.quality_per_joule_ci95_low, t.quality_per_joule_ci95_high, t.quality_per_joule)
            lines.append(f"    quality_per_joule {fmt_num(t.quality_per_joule)} correct/J"
                         + (f", 95% CI {ci}" if ci else "")
                         + (f"; {t.quality_per_joule_reason}" if t.quality_per_joule_reason else ""))
        elif t.quality_per_joule_reason:
            lines.append(f"    quality_per_joule n/a: {t.quality_per_joule_reason}")
    return lines
