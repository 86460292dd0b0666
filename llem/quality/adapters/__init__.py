"""An lm-eval ``LM`` over the backend object llem loaded and measured: no second load, no copy.

- PyTorch: lm-eval's ``HFLM`` wrapping the loaded model and tokenizer (``pytorch.py``);
- vLLM: an ``LM`` over llem's own ``vllm.LLM`` engine (``vllm.py``); lm-eval's ``VLLM`` class would
  build a second engine from a path;
- TensorRT-LLM: an ``LM`` over llem's ``tensorrt_llm.LLM``, written against the recorded API and
  untested on real TensorRT-LLM (``tensorrt.py``).

``decoding_settings`` gives the measured engine's decoding settings as lm-eval generation keywords:
generation tasks decode the way the measured cycles did (greedy by default), whatever their YAML
says, unless ``quality.gen_kwargs`` overrides a key (recorded).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# PyTorchConfig fields that reach model.generate (llem.config.pytorch_options.TYPED_GENERATE) and are
# decoding choices; use_cache is fixed to true by HFLM, max/min_new_tokens by the task
_PT_DECODING = ("top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "repetition_penalty",
                "num_beams", "length_penalty", "early_stopping", "prompt_lookup_num_tokens", "cache_implementation")
_VLLM_DECODING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
                  "frequency_penalty")


@dataclass
class Adapter:
    lm: Any                                   # the lm-eval LM
    evaluated: dict[str, Any]                 # which object is evaluated (result.json)
    generated_tokens: Callable[[], int]       # tokens the engine generated so far (generation requests)
    notes: list[str] = field(default_factory=list)


def decoding_settings(config) -> tuple[dict[str, Any], list[str]]:
    """The measured engine's decoding settings as lm-eval ``gen_kwargs``, and notes on what differs."""
    notes: list[str] = []
    if config.backend == "pytorch":
        pt = config.pytorch
        kw: dict[str, Any] = {"do_sample": pt.do_sample}
        if pt.do_sample:
            kw["temperature"] = pt.temperature
        for k in _PT_DECODING:
            v = getattr(pt, k)
            if v is not None and not (k == "num_beams" and v == 1):
                kw[k] = v
        for k, v in pt.extra_generate_kwargs.items():
            kw.setdefault(k, v)
        if not pt.use_cache:
            notes.append("pytorch.use_cache=false was measured but lm-eval's HFLM always generates with use_cache=true")
        return kw, notes
    if config.backend == "vllm":
        v = config.vllm
        kw = {k: getattr(v, k) for k in _VLLM_DECODING if getattr(v, k) is not None}
        kw["do_sample"] = bool(kw.get("temperature", 0.0))
        from llem.config.vllm_options import SAMPLING_MANAGED

        kw.update({k: x for k, x in v.extra_sampling_params.items() if k not in SAMPLING_MANAGED})
        return kw, notes
    if config.backend == "tensorrt":
        from llem.config.tensorrt_options import SAMPLING_MANAGED as TRT_MANAGED

        kw = {k: x for k, x in config.tensorrt.extra_sampling_params.items() if k not in TRT_MANAGED}
        kw.setdefault("do_sample", bool(kw.get("temperature")))
        return kw, notes
    return {}, notes


def make_adapter(backend, config, batch_size: int) -> Adapter:
    name = getattr(backend, "name", "")
    if name == "pytorch":
        from llem.quality.adapters.pytorch import make

        return make(backend, config, batch_size)
    if name == "vllm":
        from llem.quality.adapters.vllm import make

        return make(backend, config, batch_size)
    if name == "tensorrt":
        from llem.quality.adapters.tensorrt import make

        return make(backend, config, batch_size)
    raise NotImplementedError(f"no lm-eval adapter for backend {name!r}")
