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
    for w in r.warnings:
        print(f"   warning: {w}")
    if path:
        print(f"   result: {path}")
