"""Figures carry the expected series before saving, and the saved PNGs are real, non-blank images."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.image import imread

from llem.results.load import load_path
from llem.results.plots import (build_plots, fig_energy_vs_batch, fig_pareto, fig_phases, fig_timeseries,
                                pareto_frontier, write_plots)
from llem.results.table import loaded_to_dataframe

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def loaded(study_dir):
    return load_path(study_dir)


@pytest.fixture(scope="module")
def df(loaded):
    return loaded_to_dataframe(loaded)


def assert_valid_png(path, min_w=300, min_h=200):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000
    img = imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h
    assert float(np.std(img[..., :3])) > 0.01  # not a blank canvas


def texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_energy_vs_batch_series_and_ci_bars(df):
    p = fig_energy_vs_batch(df)
    ax = p.figure.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["pytorch", "vllm"]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2
    for c in bars:
        line, _, (segments,) = c.lines[0], c.lines[1], c.lines[2]
        xs, ys = line.get_data()
        backend = c.get_label()
        rows = df[(df["backend"] == backend) & df["energy_per_output_token_j"].notna()].sort_values("batch")
        assert list(xs) == list(rows["batch"].astype(float))
        assert list(ys) == pytest.approx(list(rows["energy_per_output_token_j"].astype(float)))
        # each bar spans exactly the job's 95% CI
        for seg, (_, r) in zip(segments.get_segments(), rows.iterrows()):
            assert seg[0][1] == pytest.approx(float(r["energy_per_output_token_j_ci95_low"]))
            assert seg[1][1] == pytest.approx(float(r["energy_per_output_token_j_ci95_high"]))
    # the unmeasured, failed and pending jobs are counted, not drawn at 0
    assert "not shown: 3 job(s)" in texts(p.figure)
    assert all(min(c.lines[0].get_ydata()) > 0 for c in bars)


def test_pareto_frontier_is_non_dominated(df):
    p = fig_pareto(df)
    ax = p.figure.axes[0]
    front = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto frontier"]
    assert len(front) == 1
    fx, fy = front[0].get_data()
    data = df[df["energy_per_output_token_j"].notna() & df["output_tokens_per_s"].notna()]
    x = data["energy_per_output_token_j"].astype(float).to_numpy()
    y = data["output_tokens_per_s"].astype(float).to_numpy()
    for a, b in zip(fx, fy):
        assert not np.any((x <= a) & (y >= b) & ((x < a) | (y > b))), "a frontier point is dominated"
    assert len(fx) >= 1
    assert sorted(pareto_frontier(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])).tolist()) == [0, 1]


def test_timeseries_figure_from_parquet(loaded):
    entry = next(e for e in loaded.entries if e.timeseries_path() is not None)
    ts = pd.read_parquet(entry.timeseries_path())
    p = fig_timeseries(ts, entry.job_id, entry.result.steady_state_window)
    assert len(p.figure.axes) == 2
    for ax, col in zip(p.figure.axes, ("power_w", "temperature_c")):
        labels = [ln.get_label() for ln in ax.get_lines()]
        assert labels == ["GPU 0", "GPU 1"]
        assert col in ax.get_ylabel()
        y0 = ax.get_lines()[0].get_ydata()
        assert list(y0) == pytest.approx(list(ts[ts["gpu_index"] == 0].sort_values("t_s")[col]))
        # one shaded span per measured cycle, from the sampler's cycle tag
        xs = sorted(round(p.get_x(), 3) for p in ax.patches)
        assert xs == [6.0, 7.0]


def test_timeseries_without_power_columns_is_skipped():
    p = fig_timeseries(pd.DataFrame({"t_s": [0.0, 1.0], "fan_pct": [1, 2]}), "0007")
    assert p.figure is None and "no time with power/temperature" in p.skipped


def test_phases_figure(df):
    p = fig_phases(df)
    ax = p.figure.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["prefill", "decode"]
    rows = df[df["prefill_energy_j"].notna()]
    prefill_bars = ax.containers[0]
    assert [b.get_height() for b in prefill_bars] == pytest.approx(list(rows["prefill_energy_j"].astype(float)))


def test_unmeasured_only_skips_energy_figures(real_job):
    loaded = load_path(real_job)
    df = loaded_to_dataframe(loaded)
    plots = {p.name: p for p in build_plots(loaded, df)}
    for name in ("energy_per_token_vs_batch", "pareto_throughput_vs_energy", "phases_prefill_decode"):
        assert plots[name].figure is None
    assert "no energy meter" in plots["energy_per_token_vs_batch"].skipped
    assert "timeseries.parquet" in plots["timeseries"].skipped


def test_write_plots_produces_valid_pngs(loaded, df, tmp_path):
    plots = write_plots(loaded, df, tmp_path)
    written = {p.name: p.path for p in plots if p.path}
    assert set(written) == {"energy_per_token_vs_batch", "pareto_throughput_vs_energy", "phases_prefill_decode",
                            "timeseries_0000"}
    for path in written.values():
        assert_valid_png(path)
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left
