"""Every file llem writes atomically gets the mode a plain open() would give: 0o666 & ~umask.

A temporary file from ``tempfile.mkstemp`` is 0600 whatever the umask, and the rename carried
that onto result.json, manifest.json, timeseries, PNGs and exports: colleagues on a shared
cluster could not read results, a web server could not serve an exported leaderboard."""
import os
import stat

import pandas as pd
import pytest

from llem.fsio import atomic_path, remove_stale_temps, write_text_atomic


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _result():
    from llem.config.compose import load_config
    from llem.runners.jobs import failed_result

    return failed_result(load_config(["output_len=4"]), RuntimeError("x"), "2026-12-07T00:00:00+00:00")


def test_every_atomic_writer_honours_the_umask(tmp_path, umask):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llem.result import write_json_atomic
    from llem.results.export import write_csv, write_parquet, write_text_atomic as export_text
    from llem.results.plots import save_png
    from llem.measure.sampler import COLUMNS, Sampler
    from llem.results.manifest import StudyResult
    from llem.study.manifest import StudyPlanRecord

    want = 0o666 & ~umask
    df = pd.DataFrame({"model": ["tiny"], "energy_j": [1.5]})
    written = [
        _result().save(tmp_path / "job" / "result.json"),
        StudyResult(study_name="s", study_design_hash="d", llem_version="0", created_at="t", updated_at="t",
                    study_dir=str(tmp_path)).save(tmp_path),
        StudyPlanRecord(study_name="s", study_design_hash="d", llem_version="0", created_at="t",
                        study_dir=str(tmp_path)).save(tmp_path),
        write_csv(df, tmp_path / "out" / "t.csv"),
        write_parquet(df, tmp_path / "out" / "t.parquet"),
        export_text(tmp_path / "out" / "lb" / "index.json", "{}"),
        write_text_atomic(tmp_path / "plain.txt", "x"),
    ]
    write_json_atomic(tmp_path / "j.json", {"a": 1})
    written.append(tmp_path / "j.json")
    fig = plt.figure()
    written.append(save_png(fig, tmp_path / "out" / "p.png"))
    plt.close(fig)
    s = Sampler([], None, 0.0)
    s.rows = [dict.fromkeys(COLUMNS, 0)]
    written.append(s.write_parquet(tmp_path / "job" / "timeseries.parquet"))
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: oct(want) for p in written}
    # and no temporary file is left beside any of them
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_replaced_file_takes_the_umask_not_the_old_mode(tmp_path, umask):
    p = tmp_path / "manifest.json"
    p.write_text("old")
    os.chmod(p, 0o600)  # written by an older llem
    write_text_atomic(p, "new")
    assert p.read_text() == "new" and _mode(p) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "manifest.json"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["manifest.json"]


def test_remove_stale_temps_removes_only_that_files_temporaries(tmp_path):
    for name in (".manifest.json.ab12cd34.tmp", ".manifest.json.x.tmp", ".plan.json.ab.tmp", "manifest.json",
                 ".result.json.ab.tmp"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path, "manifest.json")
    assert sorted(p.name for p in removed) == [".manifest.json.ab12cd34.tmp", ".manifest.json.x.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".plan.json.ab.tmp", ".result.json.ab.tmp",
                                                          "manifest.json"]
