"""The TensorRT-LLM adapter, UNTESTED on real TensorRT-LLM (it cannot be installed here): its calls are
checked against llem's recorded API description (llem/backends/tensorrt_api.json), and it runs through
the real harness on a TEST DOUBLE of ``tensorrt_llm`` whose engine is the tiny transformers model
(context logits and greedy tokens computed with it), so its scores can be checked against HFLM's."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from llem.backends.tensorrt import api_surface
from llem.config.compose import load_config
from tests.backends.test_tensorrt import surface_errors

pytestmark = pytest.mark.slow


def _double(calls: list) -> dict[str, types.ModuleType]:
    """TEST DOUBLE of tensorrt_llm: every constructor accepts exactly the recorded parameters; the LLM
    loads the checkpoint it is given with transformers and answers from it."""
    import enum

    from transformers import AutoModelForCausalLM

    s = api_surface()

    def make(name):
        def __init__(self, **kw):
            errs = surface_errors(name, kw)
            if errs:
                raise TypeError("; ".join(errs))
            self.kw = kw
            calls.append((name, kw))
        return type(name, (), {"__init__": __init__})

    classes = {n: make(n) for n in ("BuildConfig", "KvCacheConfig", "QuantConfig", "SamplingParams")}

    class Out:
        def __init__(self, prompt, ids, logits=None):
            self.prompt_token_ids, self.finished, self.context_logits = prompt, True, logits
            self.outputs = [types.SimpleNamespace(index=0, token_ids=ids, text=None)]

    class LLM:
        def __init__(self, **kw):
            errs = surface_errors("LLM", kw)
            if errs:
                raise TypeError("; ".join(errs))
            calls.append(("LLM", kw))
            self.model = AutoModelForCausalLM.from_pretrained(kw["model"], dtype=torch.float32)

        def generate(self, inputs, sampling_params=None, use_tqdm=True):
            k = sampling_params.kw
            outs = []
            for p in inputs:
                assert isinstance(p, list) and all(isinstance(t, int) for t in p)
                if k.get("return_context_logits"):
                    with torch.inference_mode():
                        outs.append(Out(p, [0], self.model(torch.tensor([p])).logits[0]))
                elif k.get("ignore_eos"):  # the measured workload: fixed length
                    outs.append(Out(p, [7] * k["max_tokens"]))
                else:
                    with torch.inference_mode():
                        g = self.model.generate(torch.tensor([p]), max_new_tokens=k["max_tokens"], do_sample=False,
                                                eos_token_id=k.get("stop_token_ids") or k["end_id"], pad_token_id=k["pad_id"])
                    outs.append(Out(p, g[0, len(p):].tolist()))
            return outs

        def generate_async(self, inputs, sampling_params=None, streaming=False):
            ids = [7] * sampling_params.kw["max_tokens"]

            async def stream():
                for i in range(1, len(ids) + 1):
                    yield Out(inputs, ids[:i])
            return stream()

        def shutdown(self):
            calls.append(("shutdown", {}))

    root = types.ModuleType("tensorrt_llm")
    root.__version__ = "0.0.0-test-double"
    llmapi = types.ModuleType("tensorrt_llm.llmapi")
    engine = types.ModuleType("tensorrt_llm._tensorrt_engine")
    for n, c in classes.items():
        setattr(llmapi, n, c)
    llmapi.QuantAlgo = enum.Enum("QuantAlgo", {n: n for n in s["enums"]["QuantAlgo"]})
    root.SamplingParams = classes["SamplingParams"]
    engine.LLM = LLM
    root.llmapi, root._tensorrt_engine = llmapi, engine
    return {"tensorrt_llm": root, "tensorrt_llm.llmapi": llmapi, "tensorrt_llm._tensorrt_engine": engine}


def test_tensorrt_adapter_scores_like_hflm_through_the_harness(monkeypatch, tmp_path):
    from llem.measure.harness import run
    from llem.quality.adapters import tensorrt as trt_adapter

    calls: list = []
    for name, mod in _double(calls).items():
        monkeypatch.setitem(sys.modules, name, mod)
    seen = {}
    orig = trt_adapter.make

    def make(backend, config, batch_size):
        seen["backend_llm"] = backend.llm
        seen["adapter"] = orig(backend, config, batch_size)
        seen["model"] = backend.llm.model  # the double's weights (the backend deletes its checkpoint at close)
        return seen["adapter"]

    monkeypatch.setattr(trt_adapter, "make", make)
    cfg = load_config(["backend=tensorrt", "precision=fp16", "measurement.cycles=2", "measurement.warmup_runs=0",
                       "dataset.num_prompts=2", "output_len=4", "energy.meter=none", "batch=2",
                       "quality=lm_eval", "quality.allow_random_weights=true", "quality.limit=6",
                       "quality.tasks=[llem_easy_mc,llem_easy_gen]"])
    r = run(cfg, tmp_path / "job")
    q = r.quality
    assert r.status == "completed" and q.status == "completed", (q.error_message, [t.error_message for t in q.tasks])
    assert [n for n, _ in calls].count("LLM") == 1  # one engine, measured and evaluated
    assert q.evaluated_object["object_id"] == id(seen["backend_llm"]) and q.evaluated_object["tested_on_real_tensorrt_llm"] is False
    assert any("UNTESTED" in n for n in q.notes)
    # the engine was built to return context logits (loglikelihood tasks need them)
    (bc,) = [kw for n, kw in calls if n == "BuildConfig"]
    assert bc["gather_context_logits"] is True
    # every SamplingParams the adapter made fits the recorded API (the double's constructor checked it)
    sps = [kw for n, kw in calls if n == "SamplingParams"]
    assert any(kw.get("return_context_logits") for kw in sps) and any("stop_token_ids" in kw for kw in sps)
    mc, gen = q.tasks
    assert mc.samples == 6 and mc.requests == {"loglikelihood": 24} and gen.energy.generated_tokens is not None
    # the same scores as lm-eval's HFLM on the same checkpoint
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from llem.models.sources import load_builtin_tokenizer

    hf = HFLM(pretrained=seen["model"], tokenizer=load_builtin_tokenizer(), batch_size=2)
    args = [("Question: What is the capital of Spain?\nAnswer:", " Madrid"), ("The sky is", " blue today")]
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=a, idx=i) for i, a in enumerate(args)]
    a = hf.loglikelihood(reqs, disable_tqdm=True)
    b = seen["adapter"].lm.loglikelihood(reqs, disable_tqdm=True)
    for (la, ga), (lb, gb) in zip(a, b):
        assert lb == pytest.approx(la, abs=1e-3) and ga == gb


def test_build_config_asks_for_context_logits_only_with_quality():
    from llem.backends.tensorrt import build_config_kwargs

    base = ["backend=tensorrt", "precision=fp16"]
    assert "gather_context_logits" not in build_config_kwargs(load_config(base))
    kw = build_config_kwargs(load_config([*base, "quality=lm_eval", "quality.allow_random_weights=true"]))
    assert kw["gather_context_logits"] is True and surface_errors("BuildConfig", kw) == []
