"""The short summary printed after a run says why a number is missing, never just "n/a", and
prints each headline number inside its own interval, written [a, b]."""
import re

from llem.cli.summary import print_summary
from llem.measure.stats import headline_stats
from tests.results.results_fixtures import real_result, synthetic_result


def test_missing_adjusted_energy_prints_its_reason(capsys):
    r = synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.5, tokens_per_s=900.0)
    e = r.energy.model_copy(update={"energy_adjusted_j": None, "energy_adjusted_per_output_token_j": None,
                                    "energy_adjusted_reason": "no idle baseline: meter codecarbon reads no GPU "
                                                              "energy counter"})
    print_summary(r.model_copy(update={"energy": e}))
    out = capsys.readouterr().out
    assert "baseline-adjusted n/a (no idle baseline: meter codecarbon reads no GPU energy counter)" in out
    assert "J raw" in out and ", 95% CI [" in out


def test_measured_adjusted_energy_prints_joules(capsys):
    r = synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.5, tokens_per_s=900.0)
    print_summary(r)
    out = capsys.readouterr().out
    assert f"{r.energy.energy_adjusted_j:.2f} J baseline-adjusted" in out


def test_skewed_cycles_print_points_inside_positive_intervals(capsys):
    # the vLLM batch-1 cycles: 39, 64, 28, 69, then 888 tok/s (printed before as
    # "214.3 tok/s (95% CI 215.6-1063.3)", and "0.1304 J/token (95% CI -0.1316-0.3923)")
    r = synthetic_result(real_result(), backend="vllm", batch=1, j_per_token=0.3, tokens_per_s=50.0, n_cycles=5)
    cycles = []
    for c, tps, jpt in zip(r.cycles, [39.0, 64.0, 28.0, 69.0, 888.0], [0.30, 0.21, 0.45, 0.2, 0.015]):
        dur = c.output_tokens / tps
        cycles.append(c.model_copy(update={"duration_s": dur, "output_tokens_per_s": tps, "energy_j": jpt * c.output_tokens,
                                           "energy_adjusted_j": 0.5 * jpt * c.output_tokens,
                                           "energy_per_output_token_j": jpt, "tokens_per_joule": 1 / jpt}))
    st = headline_stats(cycles)
    tok = sum(c.output_tokens for c in cycles)
    e = sum(c.energy_j for c in cycles)
    r = r.model_copy(update={"cycles": cycles, "stats": st, "output_tokens": tok,
                             "duration_s": sum(c.duration_s for c in cycles),
                             "output_tokens_per_s": st["output_tokens_per_s"].value,
                             "energy": r.energy.model_copy(update={
                                 "energy_j": e, "energy_adjusted_j": e / 2, "energy_per_output_token_j": e / tok,
                                 "energy_adjusted_per_output_token_j": e / 2 / tok, "tokens_per_joule": tok / e})})
    print_summary(r)
    out = capsys.readouterr().out
    found = re.findall(r"([0-9.]+) (tok/s|J/token), 95% CI \[(-?[0-9.]+), (-?[0-9.]+)\]", out)
    assert len(found) == 3, out  # throughput, energy per token, adjusted energy per token
    for point, unit, lo, hi in found:
        assert 0 < float(lo) <= float(point) <= float(hi), (point, unit, lo, hi)
    assert not re.search(r"\d-\d", out.split("warning")[0].replace("batch", ""))  # no "a-b" intervals
