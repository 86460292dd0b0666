"""The load's own time apart from a fresh process's start-up (imports, CUDA context)."""
import subprocess
import sys

import pytest

from llem.config.compose import load_config
from llem.measure import harness
from tests.conftest import FAST

pytestmark = pytest.mark.slow


def test_startup_and_load_steps_are_recorded_apart(tmp_path):
    r = harness.run(load_config([*FAST, "energy=none"]), tmp_path / "j")
    load = r.measurement_methodology["load"]
    assert load["load_time_s"] == r.load_time_s and load["startup_s"] >= 0
    assert "CUDA context" in load["startup"]
    steps = load["steps_s"]
    assert {"tokenizer", "model", "to_device", "static_cache"} <= set(steps)
    # the steps happen inside the load's window
    assert sum(steps.values()) <= r.load_time_s


def test_start_imports_the_model_code_and_allocates_nothing():
    # a fresh interpreter: this test process may have imported the modelling code already
    code = """
import sys
from llem.backends.pytorch import PyTorchBackend
from llem.config.compose import load_config
from llem.devices import resolve_devices
mod = "transformers.models.llama.modeling_llama"
b = PyTorchBackend(load_config(["model=llama-3.2-1b"]), resolve_devices())
before = mod in sys.modules
b.start()
print(before, mod in sys.modules, getattr(b, "model", None) is None)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]
