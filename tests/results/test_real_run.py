"""A real tiny experiment on this machine, read back by the results tools (slow: loads a model)."""
import pandas as pd
import pytest

from llem.results.export import export_table, read_table
from llem.results.load import load_path
from llem.results.table import loaded_to_dataframe

pytestmark = pytest.mark.slow


def test_real_run_reads_back_through_every_table_export(tmp_path):
    from llem import run_experiment
    from llem.config.compose import load_config

    res = run_experiment(load_config(["batch=2", "measurement.cycles=2", "measurement.warmup_runs=0", "measurement.min_window_s=0",
                                      "dataset.num_prompts=2", "output_len=4"]), tmp_path / "job")
    df = loaded_to_dataframe(load_path(tmp_path / "job"))
    row = df.iloc[0]
    assert row["config_hash"] == res.config_hash and row["output_tokens"] == res.output_tokens
    assert row["output_tokens_per_s"] == pytest.approx(res.output_tokens_per_s)
    if res.energy.measured:
        assert row["energy_j"] == pytest.approx(res.energy.energy_j)
    else:
        assert pd.isna(row["energy_j"]) and row["energy_not_measured_reason"]
    for fmt in ("csv", "parquet", "json"):
        pd.testing.assert_frame_equal(read_table(export_table(df, fmt, tmp_path / f"t.{fmt}")), df)
