"""The short summary printed after a run says why a number is missing, never just "n/a"."""
from llem.cli.summary import print_summary
from tests.results.results_fixtures import real_result, synthetic_result


def test_missing_adjusted_energy_prints_its_reason(capsys):
    r = synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.5, tokens_per_s=900.0)
    e = r.energy.model_copy(update={"energy_adjusted_j": None, "energy_adjusted_per_output_token_j": None,
                                    "energy_adjusted_reason": "no idle baseline: meter codecarbon reads no GPU "
                                                              "energy counter"})
    print_summary(r.model_copy(update={"energy": e}))
    out = capsys.readouterr().out
    assert "baseline-adjusted n/a (no idle baseline: meter codecarbon reads no GPU energy counter)" in out
    assert "J raw" in out and "(95% CI" in out


def test_measured_adjusted_energy_prints_joules(capsys):
    r = synthetic_result(real_result(), backend="pytorch", batch=4, j_per_token=0.5, tokens_per_s=900.0)
    print_summary(r)
    out = capsys.readouterr().out
    assert f"{r.energy.energy_adjusted_j:.2f} J baseline-adjusted" in out
