"""TensorRT-LLM backend: the config -> API mapping, checked against the recorded API surface
(llem/backends/tensorrt_api.json), and the backend's path through the real harness on a TEST
DOUBLE of ``tensorrt_llm`` built from that same surface.

TensorRT-LLM cannot be installed on the test machines (it installs only from NVIDIA's index): nothing here runs real
TensorRT-LLM, and the backend is untested on it (docs/tensorrt.md).
"""
from __future__ import annotations

import enum
import sys
import types
from pathlib import Path

import pytest

from llem.backends.tensorrt import TensorRTBackend, api_surface, build_config_kwargs, llm_kwargs, sampling_kwargs
from llem.config.compose import load_config
from llem.config.tensorrt_options import DEFAULT_QUANT_ALGO, QUANT_PRECISIONS
from llem.errors import ConfigError

TINY = ["backend=tensorrt", "measurement.cycles=2", "measurement.warmup_runs=0", "measurement.min_window_s=0", "dataset.num_prompts=2",
        "output_len=4", "energy.baseline.enabled=false"]
SCALAR = {"int": int, "float": (int, float), "bool": bool, "str": str}


# --- a checker for keyword arguments against the recorded surface ------------------------------
def surface_errors(cls: str, kwargs: dict) -> list[str]:
    """Everything in ``kwargs`` that the recorded ``cls`` signature would not accept."""
    s = api_surface()
    params = s["classes"][cls]["params"]
    errs = []
    for k, v in kwargs.items():
        if k not in params:
            errs.append(f"{cls}.{k}: not a recorded parameter")
            continue
        p = params[k]
        if v is None:
            if not p.get("nullable"):
                errs.append(f"{cls}.{k}: None not allowed")
            continue
        t = p["type"]
        if t in SCALAR:
            if not isinstance(v, SCALAR[t]) or (t in ("int", "float") and isinstance(v, bool)):
                errs.append(f"{cls}.{k}: {v!r} is not {t}")
                continue
            if "choices" in p and v not in p["choices"]:
                errs.append(f"{cls}.{k}: {v!r} not in {p['choices']}")
            if "min" in p and v < p["min"]:
                errs.append(f"{cls}.{k}: {v!r} < {p['min']}")
            if "max" in p and v > p["max"]:
                errs.append(f"{cls}.{k}: {v!r} > {p['max']}")
            if "exclusive_min" in p and v <= p["exclusive_min"]:
                errs.append(f"{cls}.{k}: {v!r} <= {p['exclusive_min']}")
        elif t == "QuantAlgo":
            name = getattr(v, "name", v)
            if name not in s["enums"]["QuantAlgo"]:
                errs.append(f"{cls}.{k}: {v!r} is not a recorded QuantAlgo")
        elif t in s["classes"]:
            if isinstance(v, dict):
                errs += surface_errors(t, v)
            elif type(v).__name__ != t:
                errs.append(f"{cls}.{k}: {type(v).__name__} is not {t}")
    return errs


def _cfg(*overrides):
    return load_config([*TINY, *overrides])


# --- mapping ------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision,dtype,algo", [("fp16", "float16", None), ("bf16", "bfloat16", None),
                                                  ("fp8", "bfloat16", "FP8"), ("int8", "float16", "W8A16"),
                                                  ("int4", "float16", "W4A16")])
def test_llm_kwargs_fit_the_recorded_api(precision, dtype, algo):
    cfg = _cfg(f"precision={precision}", "batch=4", "dataset.input_len=64", "output_len=16")
    kw = llm_kwargs(cfg, "/models/x")
    assert surface_errors("LLM", kw) == []
    assert kw["dtype"] == dtype and kw["skip_tokenizer_init"] is True and kw["model"] == "/models/x"
    assert kw.get("quant_config") == ({"quant_algo": algo} if algo else None)
    assert kw["build_config"] == {"max_batch_size": 4, "max_input_len": 64, "max_seq_len": 80,
                                  "max_num_tokens": 8192, "max_beam_width": 1}
    # block reuse off: cycles repeat the same prompts
    assert kw["kv_cache_config"] == {"free_gpu_memory_fraction": 0.9, "enable_block_reuse": False}


def test_every_accepted_quantisation_is_a_recorded_quant_algo():
    recorded = set(api_surface()["enums"]["QuantAlgo"])
    assert set(QUANT_PRECISIONS) <= recorded and set(DEFAULT_QUANT_ALGO.values()) <= recorded


def test_typed_fields_and_passthrough_reach_the_api():
    cfg = _cfg("precision=bf16", "tensorrt.tensor_parallel_size=2", "tensorrt.max_batch_size=16",
               "tensorrt.max_num_tokens=20000", "tensorrt.kv_cache_free_gpu_memory_fraction=0.5",
               "tensorrt.kv_cache_enable_block_reuse=true", "+tensorrt.extra_llm_args.enable_chunked_prefill=true",
               "+tensorrt.extra_sampling_params.temperature=0.7", "+tensorrt.extra_sampling_params.top_k=40")
    kw = llm_kwargs(cfg, "/models/x")
    assert surface_errors("LLM", kw) == []
    assert kw["tensor_parallel_size"] == 2 and kw["enable_chunked_prefill"] is True
    assert kw["build_config"]["max_batch_size"] == 16 and kw["build_config"]["max_num_tokens"] == 20000
    assert kw["kv_cache_config"] == {"free_gpu_memory_fraction": 0.5, "enable_block_reuse": True}
    sp = sampling_kwargs(cfg, end_id=2, pad_id=0)
    assert surface_errors("SamplingParams", sp) == []
    assert sp["temperature"] == 0.7 and sp["top_k"] == 40


def test_sampling_forces_a_fixed_output_length_in_token_ids():
    cfg = _cfg("precision=fp16", "output_len=7", "seed=3")
    sp = sampling_kwargs(cfg, end_id=2, pad_id=0)
    assert surface_errors("SamplingParams", sp) == []
    assert sp["max_tokens"] == sp["min_tokens"] == 7 and sp["ignore_eos"] is True and sp["detokenize"] is False
    assert (sp["end_id"], sp["pad_id"], sp["seed"]) == (2, 0, 3)
    assert sampling_kwargs(cfg, end_id=2, pad_id=0, max_tokens=1)["min_tokens"] == 1  # the prefill pass


def test_the_checker_itself_rejects_what_the_api_would():
    assert surface_errors("LLM", {"dtype": "float64"}) and surface_errors("LLM", {"nope": 1})
    assert surface_errors("LLM", {"build_config": {"max_batch_size": 0}})
    assert surface_errors("LLM", {"quant_config": {"quant_algo": "INT3"}})
    assert surface_errors("SamplingParams", {"max_tokens": "8"})


def test_large_batches_widen_the_engine_token_budget():
    cfg = _cfg("precision=fp16", "batch=256", "dataset.input_len=128")
    assert build_config_kwargs(cfg)["max_num_tokens"] == 256 * 128


@pytest.mark.parametrize("overrides,field,allowed", [
    (["precision=fp16", "device=cpu"], "device", "auto, cuda, cuda:<index>"),
    (["precision=int8", "tensorrt.quantization=FP8"], "tensorrt.quantization", "W8A16"),
    (["precision=fp8", "tensorrt.quantization=W3A1"], "tensorrt.quantization", "FP8"),
    (["precision=fp16", "batch=8", "tensorrt.max_batch_size=4"], "tensorrt.max_batch_size", ">= 8"),
    (["precision=fp16", "batch=8", "tensorrt.max_num_tokens=100"], "tensorrt.max_num_tokens", ">= 256"),
    (["precision=fp16", "+tensorrt.extra_llm_args.dtype=float32"], "tensorrt.extra_llm_args.dtype", "precision"),
    (["precision=fp16", "+tensorrt.extra_sampling_params.max_tokens=3"], "tensorrt.extra_sampling_params.max_tokens",
     "output_len"),
    (["precision=fp32"], "precision", "fp16, bf16, fp8, int8, int4"),
])
def test_bad_input_is_a_config_error_naming_field_value_and_allowed(overrides, field, allowed):
    with pytest.raises(ConfigError) as e:
        _cfg(*overrides)
    msg = str(e.value)
    assert e.value.exit_code == 2 and field in msg and "allowed" in msg and allowed in msg
    value = overrides[-1].split("=", 1)[1]
    assert value in msg
    assert "\n" not in msg


def test_bad_input_through_the_cli_exits_2_with_one_line(tmp_path):
    import subprocess

    p = subprocess.run([sys.executable, "-m", "llem", "run", "backend=tensorrt", "precision=fp16",
                        "tensorrt.quantization=W3A1"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "tensorrt.quantization='W3A1'" in lines[0] and "allowed" in lines[0]


def test_is_available_says_why_not_here():
    ok, why = TensorRTBackend.is_available()
    assert ok is False
    assert "tensorrt_llm is not importable" in why and "runner.tensorrt=container" in why
    assert "untested on real TensorRT-LLM" in why


def test_recorded_surface_says_what_it_is():
    s = api_surface()
    assert "NOT introspected" in s["_about"] and s["tensorrt_llm_version"]
    assert {"LLM", "BuildConfig", "KvCacheConfig", "QuantConfig", "SamplingParams"} <= set(s["classes"])


# --- the backend path, on a TEST DOUBLE of tensorrt_llm ----------------------------------------
def _fake_tensorrt_llm(calls: list) -> dict[str, types.ModuleType]:
    """TEST DOUBLE: a ``tensorrt_llm`` whose classes accept exactly the recorded parameters
    (type-checked by ``surface_errors``) and whose LLM returns ``max_tokens`` made-up token ids."""
    s = api_surface()

    def make(name):
        def __init__(self, **kw):
            errs = surface_errors(name, kw)
            if errs:
                raise TypeError("; ".join(errs))
            self.kw = kw
            calls.append((name, kw))
        return type(name, (), {"__init__": __init__})

    QuantAlgo = enum.Enum("QuantAlgo", {n: n for n in s["enums"]["QuantAlgo"]})
    classes = {n: make(n) for n in ("BuildConfig", "KvCacheConfig", "QuantConfig", "SamplingParams")}

    class Completion:
        def __init__(self, ids):
            self.index, self.token_ids, self.text = 0, ids, None

    class RequestOutput:
        def __init__(self, prompt, ids):
            self.prompt_token_ids, self.outputs, self.finished = prompt, [Completion(ids)], True

    class LLM:
        def __init__(self, **kw):
            errs = surface_errors("LLM", kw)
            if errs:
                raise TypeError("; ".join(errs))
            model = Path(kw["model"])
            assert (model / "config.json").is_file() and list(model.glob("*.safetensors")), "no checkpoint"
            calls.append(("LLM", kw))

        @staticmethod
        def _tokens(prompt, sp):
            assert isinstance(prompt, list) and all(isinstance(t, int) for t in prompt)
            k = sp.kw
            assert k["max_tokens"] == k["min_tokens"] and k["ignore_eos"] and not k["detokenize"]
            return [7] * k["max_tokens"]

        def generate(self, inputs, sampling_params=None, use_tqdm=True):
            return [RequestOutput(p, self._tokens(p, sampling_params)) for p in inputs]

        def generate_async(self, inputs, sampling_params=None, streaming=False):
            ids = self._tokens(inputs, sampling_params)

            async def stream():
                for i in range(1, len(ids) + 1):
                    yield RequestOutput(inputs, ids[:i])
            return stream()

        def shutdown(self):
            calls.append(("shutdown", {}))

    root = types.ModuleType("tensorrt_llm")
    root.__version__ = "0.0.0-test-double"
    llmapi = types.ModuleType("tensorrt_llm.llmapi")
    engine = types.ModuleType("tensorrt_llm._tensorrt_engine")
    for n, c in classes.items():
        setattr(llmapi, n, c)
    llmapi.QuantAlgo = QuantAlgo
    root.SamplingParams = classes["SamplingParams"]
    engine.LLM = LLM
    root.llmapi, root._tensorrt_engine = llmapi, engine
    return {"tensorrt_llm": root, "tensorrt_llm.llmapi": llmapi, "tensorrt_llm._tensorrt_engine": engine}


def test_the_backend_runs_the_harness_on_the_test_double(monkeypatch, tmp_path):
    from llem.measure.harness import run

    calls: list = []
    for name, mod in _fake_tensorrt_llm(calls).items():
        monkeypatch.setitem(sys.modules, name, mod)
    cfg = _cfg("precision=int4", "batch=2", "energy.meter=none")
    result = run(cfg, tmp_path / "job")
    assert result.status == "completed" and result.backend == "tensorrt"
    assert result.backend_version == "0.0.0-test-double"
    # exactly output_len tokens per prompt, counted from the returned token ids
    per_call = cfg.batch * cfg.output_len
    assert result.output_tokens == sum(c.calls for c in result.cycles) * per_call
    names = [n for n, _ in calls]
    assert names.count("LLM") == 1 and "shutdown" in names
    (qc,) = [kw for n, kw in calls if n == "QuantConfig"]
    assert qc["quant_algo"].name == "W4A16"
    assert result.measurement_methodology["backend"]["tested_on_real_tensorrt_llm"] is False
    assert result.latency is not None and result.latency.ttft_ms.n > 0  # the streaming pass timed tokens
