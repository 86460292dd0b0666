"""benchmarks/gpu_validation/study_time.py on a committed GPU study: each job's windows against its wall time."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.gpu_validation import study_time

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "docs" / "validation" / "quality-h100" / "study"


def test_windows_share_is_the_cycles_over_the_manifest_wall_time(tmp_path):
    rep = study_time.summarise(STUDY)
    manifest = json.loads((STUDY / "manifest.json").read_text())
    assert [r["job"] for r in rep["jobs"]] == [e["job_id"] for e in manifest["jobs"]]
    for row, entry in zip(rep["jobs"], manifest["jobs"]):
        result = json.loads((STUDY / entry["result_path"]).read_text())
        windows = sum(c["duration_s"] for c in result["cycles"])
        assert row["windows_s"] == windows and row["wall_s"] == entry["duration_s"]
        assert 0 < row["window_share"] == windows / entry["duration_s"] < 1
        assert row["window_share_met"] == (row["window_share"] >= 0.75)  # PyTorch jobs
    assert rep["study_wall_s"] >= sum(r["wall_s"] for r in rep["jobs"]) * 0.99
    assert rep["vllm_engine_starts"] is None and rep["checks"]["one_vllm_engine_start"] is None


def test_the_report_is_written_and_a_folder_without_manifest_exits_2(tmp_path, capsys):
    assert study_time.main([str(STUDY), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "study_time.json").is_file()
    assert "| 0000 | pytorch |" in (tmp_path / "out" / "study_time.md").read_text()
    assert study_time.main([str(tmp_path)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err
