"""`model=hub model.path=org/name` online, end to end, against a fake hub.

The hub server here is a TEST DOUBLE standing in for huggingface.co (tests/fakehub.py), which
cannot be reached from the test machines. Everything else is real: a `llem run` subprocess with
the offline switches unset and HF_ENDPOINT pointing at the double goes through llem's config
validation, `llem.models.sources.load_tokenizer` and `PyTorchBackend.load` into transformers'
`AutoTokenizer.from_pretrained` / `AutoModelForCausalLM.from_pretrained`, whose files
huggingface_hub downloads over HTTP into a temporary HF_HOME; the harness then measures the
downloaded model on CPU (energy=none).

The served model is a tiny random Llama built offline here with more layers than llem's built-in
tiny model, so its weight footprint shows which model was measured.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from llem.config.compose import load_config
from llem.models.sources import architecture_config, load_builtin_tokenizer
from tests.conftest import FAST, LLEM
from tests.fakehub import FakeHub

REPO_ID = "llem-test/tiny-llama"


class Pushed(NamedTuple):
    sha: str  # the commit on the fake hub
    weights_bytes: int  # get_memory_footprint() of the model as built
    directory: Path  # what was pushed


def _tiny_model_dir(directory: Path, layers: int, seed: int) -> int:
    """A save_pretrained folder of a random tiny Llama; returns its weight footprint in bytes."""
    cfg = {**architecture_config(load_config([]).model), "num_hidden_layers": layers}
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), dtype=torch.float32)
    model.save_pretrained(directory)
    load_builtin_tokenizer().save_pretrained(directory)
    return int(model.get_memory_footprint())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One repo with two commits: an older model one layer deeper than llem's built-in tiny one,
    then ``main``, two layers deeper."""
    root = tmp_path_factory.mktemp("hub-models")
    base = architecture_config(load_config([]).model)["num_hidden_layers"]
    pushed = {}
    with FakeHub() as fake:
        for name, layers in (("old", base + 1), ("main", base + 2)):
            size = _tiny_model_dir(root / name, layers, seed=layers)
            pushed[name] = Pushed(fake.push_model(REPO_ID, root / name), size, root / name)
        # the footprints must tell the served models and the built-in one apart, or the weight
        # checks below prove nothing
        builtin = _tiny_model_dir(root / "builtin", base, seed=0)
        assert len({builtin, pushed["old"].weights_bytes, pushed["main"].weights_bytes}) == 3
        yield fake, pushed


def _run(hub: FakeHub, tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`llem run` on the hub model, online, with a fresh HF_HOME (so every file is downloaded)."""
    hub.requests.clear()
    env = hub.client_env(tmp_path / "hf-home")
    env["LLEM_CACHE_DIR"] = str(tmp_path / "llem-cache")
    out = tmp_path / "run"
    r = subprocess.run([LLEM, "run", "model=hub", f"model.path={REPO_ID}", *overrides, "device=cpu", "energy=none",
                        *FAST, f"hydra.run.dir={out}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    res = out / "result.json"
    return r, json.loads(res.read_text()) if res.is_file() else None


def _expected_output_tokens(res: dict) -> int:
    c = res["config"]
    return sum(cy["calls"] for cy in res["cycles"]) * c["batch"] * c["output_len"]


def test_hub_id_is_downloaded_and_measured_end_to_end(served, tmp_path):
    hub, pushed = served
    main_sha, main_bytes, main_dir = pushed["main"]
    r, res = _run(hub, tmp_path)
    assert r.returncode == 0 and res is not None, f"{r.stderr[-3000:]}\n{hub.summary()}"
    assert res["status"] == "completed"
    assert (res["config"]["model"]["source"], res["config"]["model"]["path"]) == ("hub", REPO_ID)
    assert res["output_tokens"] == _expected_output_tokens(res) > 0
    assert res["memory"]["weights_bytes"] == main_bytes

    got = hub.downloads("model", REPO_ID)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {f for _, f, _ in got}, hub.summary()
    # `main` was resolved to its commit once, and every file was fetched by transformers' loaders
    assert {rev for rev, _, _ in got} == {main_sha}
    assert all("transformers/" in ua for _, _, ua in got)
    # every resolve went to this repo: nothing else (no other model, no fallback) was fetched
    assert all(q.path.startswith(f"/{REPO_ID}/resolve/") for q in hub.requests if "/resolve/" in q.path)
    snapshot = tmp_path / "hf-home" / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / main_sha
    assert (snapshot / "model.safetensors").read_bytes() == (main_dir / "model.safetensors").read_bytes()


def test_model_revision_pins_an_older_commit_for_weights_and_tokenizer(served, tmp_path):
    hub, pushed = served
    old_sha, old_bytes, _ = pushed["old"]
    r, res = _run(hub, tmp_path, f"model.revision={old_sha}")
    assert r.returncode == 0 and res is not None, f"{r.stderr[-3000:]}\n{hub.summary()}"
    assert res["status"] == "completed" and res["config"]["model"]["revision"] == old_sha
    assert res["memory"]["weights_bytes"] == old_bytes
    got = hub.downloads("model", REPO_ID)
    assert {"model.safetensors", "tokenizer.json"} <= {f for _, f, _ in got}, hub.summary()
    # the tokenizer too: a revision that reached only from_pretrained would fetch it from main
    assert {rev for rev, _, _ in got} == {old_sha}
