"""benchmarks/serve/load.py on a tiny scale: it seeds through the server's ingest, serves, loads
every endpoint, and reports counts and percentiles (the figures themselves are never asserted)."""
import json

import pytest

from tests.conftest import load_benchmark

pytest.importorskip("fastapi", reason="the serve extra is not installed")


def test_the_load_script_reports_every_endpoint(tmp_path):
    load = load_benchmark("load")
    rc = load.main(["--db", "sqlite", "--jobs", "30", "--jobs-per-study", "10", "--clients", "3", "--requests", "12",
                    "--warmup", "3", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "sqlite-3c.json").read_text())
    assert rc == 0
    assert report["stored_jobs"] == 30 and report["studies"] == 3 and report["clients"] == 3
    assert set(report["endpoints"]) == {"list", "leaderboard index", "leaderboard study"}
    for f in report["endpoints"].values():
        assert f["requests"] == 12 and f["errors"] == 0 and f["complete"]
        assert 0 < f["p50_ms"] <= f["p90_ms"] <= f["p99_ms"] <= f["max_ms"]
    assert report["command"].startswith("python benchmarks/serve/load.py --db sqlite")


def test_synthetic_results_are_valid_and_labelled():
    import random

    load = load_benchmark("load")
    r = load.synthetic_result(5, random.Random(1))
    st = r.stats["energy_per_output_token_j"]
    assert st.ci95_low <= st.value <= st.ci95_high
    assert "SYNTHETIC" in r.extra["synthetic_test_data"] and "SYNTHETIC" in r.energy.source
