"""Figures carry the expected series before saving, and the saved PNGs are real, non-blank images."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.image import imread

from llem.results.load import load_path
from llem.results.plots import (build_plots, caption, fig_backends_side_by_side, fig_energy_vs_batch, fig_pareto,
                                fig_phases, fig_throughput_latency, fig_timeseries, pareto_frontier, write_plots)
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
    """Every text on the figure: axes texts and annotations, titles, the suptitle and the footnote."""
    out = [t.get_text() for ax in fig.axes for t in ax.texts]
    out += [ax.get_title() for ax in fig.axes]
    for t in (fig._suptitle, fig._supxlabel):
        if t is not None:
            out.append(t.get_text())
    return " ".join(out)


def without_energy(df, backend):
    """The fixture study with one backend's energy unmeasured, as on a machine where vLLM's
    environment has no meter: its throughput and latency were still measured."""
    out = df.copy()
    rows = out["backend"] == backend
    out.loc[rows, "energy_measured"] = False
    out.loc[rows, "energy_not_measured_reason"] = "no energy meter in this environment"
    for c in [c for c in out.columns if c.startswith(("energy_per_output", "energy_adjusted_per", "tokens_per_joule"))
              or c in ("energy_j", "energy_adjusted_j", "prefill_energy_j", "decode_energy_j")]:
        out.loc[rows, c] = pd.NA
    return out


def test_energy_vs_batch_series_and_ci_bars(df):
    p = fig_energy_vs_batch(df)
    ax = p.figure.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["pytorch", "vllm"]
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2
    for c in bars:
        line, (segments,) = c.lines[0], c.lines[2]
        xs, ys = line.get_data()
        backend = c.get_label()
        rows = df[(df["backend"] == backend) & df["energy_per_output_token_j"].notna()].sort_values("batch")
        # each series sits at its batches, nudged a little along the log axis so that bars do not overlap
        assert [round(np.log2(x)) for x in xs] == list(np.log2(rows["batch"].astype(float)))
        assert all(abs(np.log2(x) - round(np.log2(x))) < 0.1 for x in xs)
        assert list(ys) == pytest.approx(list(rows["energy_per_output_token_j"].astype(float)))
        # each bar spans exactly the job's 95% CI, around a point inside it
        for seg, (_, r) in zip(segments.get_segments(), rows.iterrows()):
            assert seg[0][1] == pytest.approx(float(r["energy_per_output_token_j_ci95_low"]))
            assert seg[1][1] == pytest.approx(float(r["energy_per_output_token_j_ci95_high"]))
            assert seg[0][1] <= float(r["energy_per_output_token_j"]) <= seg[1][1]
        # the points are joined by a dotted line only, and the footnote says what it means
        assert line.get_linestyle() == ":"
    t = texts(p.figure)
    assert "dotted lines only join measured batches" in t
    # the unmeasured, failed and pending jobs are counted, not drawn at 0
    assert "not shown: 3 job(s)" in t
    assert all(min(c.lines[0].get_ydata()) > 0 for c in bars)


def test_captions_name_model_precision_device_and_energy_scope(df):
    cap = caption(df)
    assert "model tiny-llama" in cap and "precision fp32" in cap and "Synthetic GPU" in cap
    assert "energy: GPU (synthetic)" in cap
    host = df.copy()
    host["device"], host["gpu_name"], host["cpu_name"] = "cpu", pd.NA, "Some CPU"
    host["energy_scope"], host["energy_estimated"], host["energy_meter"] = "host", True, "codecarbon"
    cap = caption(host)
    assert "device CPU (Some CPU)" in cap and "energy: host CPU+DRAM, estimated (codecarbon)" in cap
    for fig in (fig_energy_vs_batch(df), fig_pareto(df), fig_phases(df), fig_backends_side_by_side(df)):
        assert "energy: GPU (synthetic)" in texts(fig.figure), fig.name
    assert "tiny-llama" in texts(fig_throughput_latency(df).figure)


def test_pareto_bars_on_both_axes_every_point_labelled(df):
    p = fig_pareto(df)
    ax = p.figure.axes[0]
    data = df[df["energy_per_output_token_j"].notna() & df["output_tokens_per_s"].notna()]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert bars and all(c.has_xerr and c.has_yerr for c in bars)
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == sorted(f"{r.backend} b{r.batch}" for r in data.itertuples())


def test_pareto_frontier_is_non_dominated_and_a_line(df):
    # make three jobs trade energy for speed, so the frontier has several points
    df = df.copy()
    trade = {"0000": (0.10, 9000.0), "0001": (0.05, 5000.0), "0002": (0.02, 1000.0)}
    for job, (x, y) in trade.items():
        i = df.index[df["job_id"] == job][0]
        df.loc[i, ["energy_per_output_token_j", "energy_per_output_token_j_ci95_low",
                   "energy_per_output_token_j_ci95_high"]] = [x, x * 0.9, x * 1.1]
        df.loc[i, ["output_tokens_per_s", "output_tokens_per_s_ci95_low", "output_tokens_per_s_ci95_high"]] = \
            [y, y * 0.95, y * 1.05]
    ax = fig_pareto(df).figure.axes[0]
    front = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto frontier"]
    assert len(front) == 1 and front[0].get_linestyle() == "-"
    fx, fy = front[0].get_data()
    assert sorted(zip(fx, fy)) == sorted(trade.values())
    data = df[df["energy_per_output_token_j"].notna() & df["output_tokens_per_s"].notna()]
    x = data["energy_per_output_token_j"].astype(float).to_numpy()
    y = data["output_tokens_per_s"].astype(float).to_numpy()
    for a, b in zip(fx, fy):
        assert not np.any((x <= a) & (y >= b) & ((x < a) | (y > b))), "a frontier point is dominated"
    assert sorted(pareto_frontier(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])).tolist()) == [0, 1]


def test_throughput_and_latency_compare_backends_without_energy(df):
    # neither backend's energy measured: the energy figures are skipped, these two are drawn
    df = without_energy(without_energy(df, "vllm"), "pytorch")
    assert fig_energy_vs_batch(df).figure is None
    p = fig_throughput_latency(df)
    axes = p.figure.axes
    assert [ax.get_ylabel() for ax in axes] == ["output_tokens_per_s (tokens/s)", "time to first token, p50 (ms)",
                                                "inter-token latency, p50 (ms)"]
    for ax in axes:
        assert ax.get_xscale() == "log"
        series = {c.get_label() for c in ax.containers if isinstance(c, ErrorbarContainer)}
        assert series == {"pytorch", "vllm"}
    tput = {c.get_label(): c for c in axes[0].containers if isinstance(c, ErrorbarContainer)}
    rows = df[(df["backend"] == "vllm") & df["output_tokens_per_s"].notna() & (df["status"] == "completed")]
    assert list(tput["vllm"].lines[0].get_ydata()) == pytest.approx(
        list(rows.sort_values("batch")["output_tokens_per_s"].astype(float)))
    side = fig_backends_side_by_side(df)
    assert side.figure is not None
    # J/token of both backends at 4 batches, and of the real unmeasured job (pytorch batch 2, in its own bar)
    assert texts(side.figure).count("not\nmeasured") == 2 * 4 + 1


def test_side_by_side_compares_backends_per_batch(df):
    df = without_energy(df, "vllm")
    p = fig_backends_side_by_side(df)
    fig = p.figure
    titles = [ax.get_title() for ax in fig.axes]
    assert [t for t in titles if t] == ["batch 1", "batch 2", "batch 4", "batch 8"]
    rows = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert rows == ["J/token", "tokens/s", "TTFT p50 (ms)"]
    energy_axes = fig.axes[:4]
    for ax, batch in zip(energy_axes, (1, 2, 4, 8)):
        heights = [b.get_height() for b in ax.patches]
        want = df[(df["backend"] == "pytorch") & (df["batch"] == batch) & (df["status"] == "completed")
                  & df["energy_per_output_token_j"].notna()]["energy_per_output_token_j"].astype(float).tolist()
        assert heights == pytest.approx(want)  # vLLM's bar is not drawn (never a 0) ...
        assert "not\nmeasured" in [t.get_text() for t in ax.texts]  # ... it says why instead
    # throughput: a bar for every completed job (a repeated configuration gets a bar of its own)
    for ax, batch in zip(fig.axes[4:8], (1, 2, 4, 8)):
        assert len(ax.patches) == int(((df["batch"] == batch) & (df["status"] == "completed")).sum())


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


def test_phases_figure_shows_uncertainty_and_labels_every_segment(df):
    p = fig_phases(df)
    ax = p.figure.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["prefill", "decode"]
    rows = df[df["prefill_energy_j"].notna() & df["decode_energy_j"].notna() & (df["status"] == "completed")]
    # per request: a pass holds a different number of prompts at each batch size
    prompts = rows["prefill_energy_j"].astype(float) / rows["prefill_energy_per_prompt_j"].astype(float)
    assert ax.get_ylabel() == "energy_j (J) per request"
    prefill_bars = ax.containers[0]
    assert [b.get_height() for b in prefill_bars] == pytest.approx(list(rows["prefill_energy_per_prompt_j"]
                                                                        .astype(float)))
    shown = " ".join(t.get_text() for t in ax.texts)
    for v in list(rows["prefill_energy_per_prompt_j"]) + list(rows["decode_energy_j"].astype(float) / prompts):
        assert f"{float(v):.3g} J" in shown
    assert "error bars: +-1 standard error" in texts(p.figure)


def test_phase_error_bars_come_from_the_recorded_standard_errors(df):
    df = df.copy()
    i = df.index[df["prefill_energy_j"].notna()][0]
    df.loc[i, "prefill_energy_per_prompt_se_j"] = df.loc[i, "prefill_energy_per_prompt_j"] * 0.1
    df.loc[i, "decode_energy_per_output_token_se_j"] = 0.01
    ax = fig_phases(df).figure.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (pre_seg,), (dec_seg,) = bars[0].lines[2], bars[1].lines[2]
    prompts = float(df.loc[i, "prefill_energy_j"]) / float(df.loc[i, "prefill_energy_per_prompt_j"])
    lo, hi = pre_seg.get_segments()[0][:, 1]
    assert (hi - lo) / 2 == pytest.approx(float(df.loc[i, "prefill_energy_per_prompt_j"]) * 0.1)
    lo, hi = dec_seg.get_segments()[0][:, 1]
    assert (hi - lo) / 2 == pytest.approx(0.01 * float(df.loc[i, "decode_tokens"]) / prompts)


def test_unmeasured_only_skips_energy_figures(real_job):
    loaded = load_path(real_job)
    df = loaded_to_dataframe(loaded)
    plots = {p.name: p for p in build_plots(loaded, df)}
    for name in ("energy_per_token_vs_batch", "pareto_throughput_vs_energy", "phases_prefill_decode"):
        assert plots[name].figure is None
    assert "no energy meter" in plots["energy_per_token_vs_batch"].skipped
    assert "timeseries.parquet" in plots["timeseries"].skipped
    # throughput and latency need no energy
    assert plots["throughput_latency_vs_batch"].figure is not None
    assert plots["backends_side_by_side"].figure is not None


def test_write_plots_produces_valid_pngs(loaded, df, tmp_path):
    plots = write_plots(loaded, df, tmp_path)
    written = {p.name: p.path for p in plots if p.path}
    assert set(written) == {"energy_per_token_vs_batch", "pareto_throughput_vs_energy", "phases_prefill_decode",
                            "throughput_latency_vs_batch", "backends_side_by_side", "timeseries_0000"}
    for path in written.values():
        assert_valid_png(path)
        assert path.stat().st_size < 150_000  # small enough to commit and to put in a paper's repository
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left
