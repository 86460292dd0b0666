"""`dataset=hf dataset.path=org/set` online, against a fake hub.

The hub server here is a TEST DOUBLE standing in for huggingface.co (tests/fakehub.py), which
cannot be reached from the test machines. Everything else is real: subprocesses with the offline
switches unset and HF_ENDPOINT pointing at the double run llem's config validation and
`llem.datasets.load_prompts`, whose `hf` source calls `datasets.load_dataset` (the `hf` extra);
datasets finds the repo's parquet files through huggingface_hub (repo info, tree listing,
resolve downloads into a temporary HF_HOME) and builds the split. One `llem run` takes the
prompts through the whole harness on CPU (built-in tiny model, energy=none).

Expected prompts are computed here from the rows that were served, with the built-in tokenizer,
and for shuffled order from llem's JSONL source over the same rows, so a hub dataset and a local
file must give identical prompts under every control.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("datasets", reason="dataset=hf needs the hf extra (scripts/setup.sh --dev installs it)")

from llem.config.schema import DatasetConfig  # noqa: E402
from llem.datasets import fit_length, load_prompts  # noqa: E402
from llem.models.sources import load_builtin_tokenizer  # noqa: E402
from tests.conftest import FAST, LLEM  # noqa: E402
from tests.fakehub import FakeHub  # noqa: E402

REPO_ID = "llem-test/prompts"
TOK = load_builtin_tokenizer()
TEST_WORDS = ["amber", "birch", "cedar", "delta", "ember", "fjord", "glacier", "harbor", "island", "juniper"]
TEST_ROWS = [{"id": i, "text": f"{w} opens test prompt {i}, then a few more words",
              "question": f"Why is the {w} question number {i}?"} for i, w in enumerate(TEST_WORDS)]
TRAIN_ROWS = [{"id": i, "text": f"{w} opens train prompt {i}", "question": f"What of {w}?"}
              for i, w in enumerate(["quartz", "river", "summit", "tundra"])]
INPUT_LEN = 6

# Runs in a fresh interpreter: huggingface_hub and datasets read HF_ENDPOINT and the offline
# switches once, at import, and this test process was imported offline (tests/conftest.py).
PROBE = r"""
import json, sys
from llem.config.compose import load_config
from llem.datasets import load_prompts
from llem.errors import ConfigError
from llem.models.sources import load_builtin_tokenizer
tok = load_builtin_tokenizer()
out = {}
for name, overrides in json.loads(sys.argv[1]).items():
    try:
        out[name] = {"prompts": load_prompts(load_config(overrides).dataset, tok, len(tok))}
    except ConfigError as err:
        out[name] = {"error": str(err)}
print("PROBE " + json.dumps(out))
"""


def _parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _expected(texts: list[str]) -> list[list[int]]:
    return [fit_length(TOK.encode(t, add_special_tokens=False), INPUT_LEN) for t in texts]


@pytest.fixture(scope="module")
def hub():
    with FakeHub() as fake:
        # the hub's layout for a parquet dataset: split names come from the file names
        fake.push_dataset(REPO_ID, {
            "README.md": b"---\nlicense: mit\n---\n# prompts for llem's online tests\n",
            "data/test-00000-of-00001.parquet": _parquet(TEST_ROWS),
            "data/train-00000-of-00001.parquet": _parquet(TRAIN_ROWS),
        })
        yield fake


@pytest.fixture(scope="module")
def probed(hub, tmp_path_factory):
    """Prompts (or the ConfigError) for each set of overrides, from one online subprocess."""
    base = ["dataset=hf", f"dataset.path={REPO_ID}", "dataset.num_prompts=3", f"dataset.input_len={INPUT_LEN}"]
    cases = {
        "default": base,
        "all_rows": [*base, f"dataset.num_prompts={len(TEST_ROWS)}"],
        "train": [*base, "dataset.split=train"],
        "question": [*base, "dataset.text_field=question"],
        "shuffled_3": [*base, "dataset.order=shuffled", "dataset.seed=3"],
        "shuffled_4": [*base, "dataset.order=shuffled", "dataset.seed=4"],
        "missing_column": [*base, "dataset.text_field=prompt"],
        "missing_split": [*base, "dataset.split=validation"],
        "missing_dataset": [*base, "dataset.path=llem-test/absent"],
    }
    home = tmp_path_factory.mktemp("hf-home")
    hub.requests.clear()
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], env=hub.client_env(home),
                       capture_output=True, text=True, timeout=300, cwd=home)
    assert r.returncode == 0, f"{r.stderr[-3000:]}\n{hub.summary()}"
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE ")), list(hub.requests)


def test_served_rows_tell_prompts_apart():
    # otherwise equal prompts could hide a wrong row, split or column
    every = _expected([r[k] for r in TEST_ROWS + TRAIN_ROWS for k in ("text", "question")])
    assert len({tuple(p) for p in every}) == len(every)


def test_default_split_count_and_row_order(probed):
    out, _ = probed
    assert out["default"]["prompts"] == _expected([r["text"] for r in TEST_ROWS[:3]])
    assert out["all_rows"]["prompts"] == _expected([r["text"] for r in TEST_ROWS])


def test_split_and_text_field_select_what_is_read(probed):
    out, _ = probed
    assert out["train"]["prompts"] == _expected([r["text"] for r in TRAIN_ROWS[:3]])
    assert out["question"]["prompts"] == _expected([r["question"] for r in TEST_ROWS[:3]])


def test_shuffled_order_matches_the_same_rows_as_a_local_jsonl(probed, tmp_path):
    out, _ = probed
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in TEST_ROWS))
    for seed in (3, 4):
        local = load_prompts(DatasetConfig(kind="jsonl", name="jsonl", path=str(f), num_prompts=3, input_len=INPUT_LEN,
                                           order="shuffled", seed=seed), TOK, len(TOK))
        assert out[f"shuffled_{seed}"]["prompts"] == local
    assert out["shuffled_3"]["prompts"] != out["shuffled_4"]["prompts"]
    assert out["shuffled_3"]["prompts"] != out["default"]["prompts"]


def test_missing_column_names_the_columns_that_exist(probed):
    out, _ = probed
    err = out["missing_column"]["error"]
    assert "dataset.text_field='prompt'" in err and REPO_ID in err
    assert all(col in err for col in TEST_ROWS[0])


def test_missing_split_and_missing_dataset_name_the_field(probed):
    out, _ = probed
    err = out["missing_split"]["error"]
    assert err.startswith("dataset.split='validation' is not a split of " + REPO_ID)
    assert "test" in err and "train" in err  # the splits that exist
    assert out["missing_dataset"]["error"].startswith("dataset.path='llem-test/absent': no such dataset")


def test_an_unreachable_dataset_fails_the_job_before_the_model_loads(tmp_path, monkeypatch):
    import os

    from llem.config.compose import load_config
    from llem.errors import ConfigError
    from llem.measure import harness

    offline = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
               if k in os.environ}
    for k in offline:  # validated online (where the name cannot be checked without the hub) ...
        monkeypatch.delenv(k)
    cfg = load_config(["dataset=hf", "dataset.path=llem-test/absent", "device=cpu", "energy=none", *FAST])
    for k, v in offline.items():  # ... run offline: the dataset cannot be fetched, and that is found first
        monkeypatch.setenv(k, v)
    assert offline, "tests run offline (tests/conftest.py)"
    seen: list[str] = []
    with pytest.raises(ConfigError, match="llem-test/absent"):
        harness.run(cfg, tmp_path, progress=seen.append)
    assert seen and seen[0].startswith("reading dataset llem-test/absent")
    assert not any(m.startswith("loading") or "baseline" in m for m in seen)


def test_rows_came_from_the_hub_through_datasets(probed, hub):
    _, requests = probed
    got = {(q.path, "datasets/" in q.user_agent) for q in requests if q.method == "GET" and q.status == 200}
    sha = hub.repos[("dataset", REPO_ID)].sha
    assert (f"/datasets/{REPO_ID}/resolve/{sha}/data/test-00000-of-00001.parquet", True) in got, hub.summary()
    # data files were found by listing the repo, as on the real hub (no path was configured)
    assert any(p.startswith(f"/api/datasets/{REPO_ID}/tree/{sha}") for p, _ in got)


def test_llem_run_measures_prompts_from_a_hub_dataset(hub, tmp_path):
    hub.requests.clear()
    env = hub.client_env(tmp_path / "hf-home")
    env["LLEM_CACHE_DIR"] = str(tmp_path / "llem-cache")
    r = subprocess.run([LLEM, "run", "dataset=hf", f"dataset.path={REPO_ID}", "device=cpu", "energy=none", *FAST,
                        "hydra.run.dir=out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{r.stderr[-3000:]}\n{hub.summary()}"
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    c = res["config"]
    assert res["status"] == "completed" and (c["dataset"]["kind"], c["dataset"]["path"]) == ("hf", REPO_ID)
    calls = sum(cy["calls"] for cy in res["cycles"])
    assert res["input_tokens"] == calls * c["batch"] * c["dataset"]["input_len"] > 0
    served = {f for _, f, ua in hub.downloads("dataset", REPO_ID) if "datasets/" in ua}
    assert "data/test-00000-of-00001.parquet" in served, hub.summary()
