"""Every export reads back to equal data, and a failed export leaves no file behind."""
import json

import pandas as pd
import pytest

from llem.errors import ConfigError
from llem.results.carbon import add_carbon_columns
from llem.results.export import export_table, read_table, write_csv
from llem.results.leaderboard import (leaderboard_order, read_leaderboard_study, study_document,
                                      write_leaderboard)
from llem.results.load import load_path
from llem.results.table import loaded_to_dataframe


@pytest.fixture(scope="module")
def df(study_dir):
    return add_carbon_columns(loaded_to_dataframe(load_path(study_dir)), "FRA", pue=1.2)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_table_export_round_trips(df, tmp_path, fmt):
    path = export_table(df, fmt, tmp_path / f"out.{fmt}")
    back = read_table(path)
    pd.testing.assert_frame_equal(back, df)
    # the data is not trivially empty: measured values and missing values both survived
    assert back["energy_per_output_token_j"].notna().sum() == 8
    assert back["energy_per_output_token_j"].isna().sum() == 3


def test_json_export_is_plain_json_with_nulls(df, tmp_path):
    doc = json.loads(export_table(df, "json", tmp_path / "t.json").read_text())
    assert doc["schema"] == "llem.results.table"
    rows = {r["job_id"]: r for r in doc["rows"]}
    assert rows["0009"]["energy_per_output_token_j"] is None
    assert isinstance(rows["0000"]["energy_per_output_token_j"], float)


def test_failed_export_leaves_no_partial_file(df, tmp_path, monkeypatch):
    target = tmp_path / "out.csv"

    def broken(self, path, *a, **k):
        with open(path, "w") as f:
            f.write("job_id,partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError):
        write_csv(df, target)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_unknown_format(df, tmp_path):
    with pytest.raises(ConfigError, match="allowed: csv, parquet, json, leaderboard"):
        export_table(df, "xml", tmp_path / "x")


def test_leaderboard_round_trips_and_ranks_only_measured(df, tmp_path):
    sp, ip = write_leaderboard(df, tmp_path / "lb", name="synthetic-study", design_hash="abcdef0123456789")
    back = read_leaderboard_study(sp)
    expected = leaderboard_order(df)
    pd.testing.assert_frame_equal(back, expected)
    doc = json.loads(sp.read_text())
    ranks = [e["rank"] for e in doc["entries"]]
    assert ranks[:8] == list(range(1, 9)) and ranks[8:] == [None, None, None]
    values = [e["metrics"]["energy_per_output_token_j"]["value"] for e in doc["entries"][:8]]
    assert values == sorted(values)
    unranked = doc["entries"][8:]
    assert all(e["metrics"]["energy_per_output_token_j"]["value"] is None for e in unranked)
    assert all(e["energy_not_measured_reason"] for e in unranked)
    assert doc["carbon"]["pue"] == 1.2 and "source" in doc["carbon"]
    assert {c["key"] for c in doc["columns"]} >= {"energy_per_output_token_j", "output_tokens_per_s", "gco2e"}
    index = json.loads(ip.read_text())
    assert index["schema"] == "llem.leaderboard.index"
    assert [s["file"] for s in index["studies"]] == [sp.name]
    assert index["studies"][0]["best"]["energy_per_output_token_j"] == values[0]


def test_leaderboard_index_keeps_other_studies(df, study_dir_b, tmp_path):
    out = tmp_path / "lb"
    write_leaderboard(df, out, name="a", design_hash="1111111111")
    df_b = loaded_to_dataframe(load_path(study_dir_b))
    write_leaderboard(df_b, out, name="b", design_hash="2222222222")
    write_leaderboard(df, out, name="a", design_hash="1111111111")  # re-export replaces, never duplicates
    index = json.loads((out / "index.json").read_text())
    assert sorted(s["name"] for s in index["studies"]) == ["a", "b"]
    for s in index["studies"]:
        assert (out / s["file"]).is_file()


def test_leaderboard_document_is_strict_json(df):
    doc = study_document(df, name="x")
    text = json.dumps(doc, allow_nan=False)  # raises on NaN, which would make the file unreadable in browsers
    assert "NaN" not in text and "Infinity" not in text and json.loads(text) == json.loads(json.dumps(doc))


FORMULAS = ["=HYPERLINK(\"http://x\",\"click\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1"]


def test_csv_defuses_formula_text_but_keeps_numbers_and_reads_back_equal(df, tmp_path):
    import csv

    hostile = df.head(len(FORMULAS) + 3).copy()
    # text a spreadsheet would run, text that is already quoted, and plain text and numbers as text
    hostile["model"] = pd.array(FORMULAS + ["'=already quoted", "-5", "plain"], dtype="string")
    hostile["tag"] = pd.array(["@x", "-1.5", None, "=1", "ok", "+7", "'-5", "'", "a-b"], dtype="string")
    hostile["energy_j"] = pd.array([-5.0, -0.25, 1.0, -1e-3, 2.0, -3.0, None, 0.0, -7.5], dtype="Float64")
    hostile["batch"] = pd.array([-1, 2, -3, 4, 5, 6, 7, 8, 9], dtype="Int64")
    path = export_table(hostile, "csv", tmp_path / "t.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # every formula cell starts with a quote in the file, so a spreadsheet shows it as text
    assert [r["model"] for r in rows[:len(FORMULAS)]] == ["'" + f for f in FORMULAS]
    assert [r["model"] for r in rows[len(FORMULAS):]] == ["''=already quoted", "-5", "plain"]
    assert [r["tag"] for r in rows] == ["'@x", "-1.5", "", "'=1", "ok", "+7", "''-5", "'", "a-b"]
    # numbers stay numbers: negative values are written bare, not as quoted text
    assert [r["energy_j"] for r in rows] == ["-5.0", "-0.25", "1.0", "-0.001", "2.0", "-3.0", "", "0.0", "-7.5"]
    assert [r["batch"] for r in rows][:3] == ["-1", "2", "-3"]
    # reading the export back removes exactly the quote that was added
    pd.testing.assert_frame_equal(read_table(path), hostile)


def test_json_and_parquet_exports_keep_the_raw_text(df, tmp_path):
    hostile = df.head(len(FORMULAS)).copy()
    hostile["model"] = pd.array(FORMULAS, dtype="string")
    doc = json.loads(export_table(hostile, "json", tmp_path / "t.json").read_text())
    assert [r["model"] for r in doc["rows"]] == FORMULAS
    back = read_table(export_table(hostile, "parquet", tmp_path / "t.parquet"))
    assert back["model"].tolist() == FORMULAS
