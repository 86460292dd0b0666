"""TensorRT-LLM backend over its ``LLM`` API (TensorRT-engine flow), with the same contract as
the PyTorch and vLLM backends.

UNTESTED ON REAL TensorRT-LLM. TensorRT-LLM cannot be installed on llem's development or CI
machines (its PyPI package only fetches the real wheel from NVIDIA's index). What is tested is the
mapping from llem's config to the keyword arguments of ``LLM``, ``BuildConfig``,
``KvCacheConfig``, ``QuantConfig`` and ``SamplingParams``, against a hand-recorded description
of that API (``tensorrt_api.json``), and the backend's load/generate/count path against a test
double built from the same description. See docs/tensorrt.md.

- The engine is built for the workload: ``max_batch_size`` = ``batch`` (unless set),
  ``max_input_len`` = ``dataset.input_len``, ``max_seq_len`` = input + ``output_len``, beam width 1.
- KV cache: ``free_gpu_memory_fraction`` from the config; block reuse OFF by default, because every
  measured cycle repeats the same prompts and reused blocks would skip their prefill.
- Precision: fp16/bf16 set ``dtype``; fp8/int8/int4 set ``QuantConfig.quant_algo`` (default FP8,
  W8A16, W4A16: the weight-only int methods need no calibration data), or ``tensorrt.quantization``.
- Fixed output length: ``max_tokens == min_tokens == output_len`` with ``ignore_eos``; prompts go
  in as token ids (``skip_tokenizer_init``), so ``end_id``/``pad_id`` come from llem's tokenizer;
  token counts come from the returned ``token_ids``.

Nothing here imports TensorRT-LLM at module import, so llem's main environment can import it too;
the checks that need no TensorRT-LLM run at validation time (``llem.config.tensorrt_options``).
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from llem.backends.base import (Backend, GenerationOutput, PreparedBatch, count_request_outputs,
                                sync_existing_cuda_context)
from llem.config.tensorrt_options import check_config, effective_max_batch_size, resolve_quant_algo
from llem.errors import ConfigError

API_SURFACE = Path(__file__).with_name("tensorrt_api.json")

DTYPES = {"fp16": "float16", "bf16": "bfloat16"}
MIN_MAX_NUM_TOKENS = 8192  # TensorRT-LLM's own default engine token budget


@functools.lru_cache(maxsize=1)
def api_surface() -> dict[str, Any]:
    """The recorded TensorRT-LLM API description (``tensorrt_api.json``)."""
    return json.loads(API_SURFACE.read_text())


# --- mapping to TensorRT-LLM's arguments (no TensorRT-LLM import) --------------------------------
def build_config_kwargs(config) -> dict[str, Any]:
    """``BuildConfig`` keyword arguments: an engine sized for exactly this workload."""
    t = config.tensorrt
    input_len = config.dataset.input_len
    need = effective_max_batch_size(config) * input_len
    kw = {
        "max_batch_size": effective_max_batch_size(config),
        "max_input_len": input_len,
        "max_seq_len": input_len + config.output_len,
        "max_num_tokens": t.max_num_tokens if t.max_num_tokens is not None else max(MIN_MAX_NUM_TOKENS, need),
        "max_beam_width": 1,
    }
    quality = getattr(config, "quality", None)
    if quality is not None and quality.enabled:
        # lm-eval's loglikelihood tasks score prompt tokens from the context logits: the engine that is
        # measured and then evaluated is built to return them (llem/quality/adapters/tensorrt.py)
        kw["gather_context_logits"] = True
    return kw


def kv_cache_kwargs(config) -> dict[str, Any]:
    t = config.tensorrt
    return {"free_gpu_memory_fraction": t.kv_cache_free_gpu_memory_fraction,
            "enable_block_reuse": t.kv_cache_enable_block_reuse}


def quant_kwargs(config) -> Optional[dict[str, Any]]:
    algo = resolve_quant_algo(config)
    return {"quant_algo": algo} if algo else None


def dtype_for(config) -> str:
    if config.precision in DTYPES:
        return DTYPES[config.precision]
    # quantised weights compute in half precision; fp8 keeps bf16 activations
    return "bfloat16" if config.precision == "fp8" else "float16"


def llm_kwargs(config, model_dir: Optional[str] = None) -> dict[str, Any]:
    """Keyword arguments for ``LLM``, with the nested configs as plain dicts (``load`` turns them
    into ``BuildConfig``/``KvCacheConfig``/``QuantConfig`` objects)."""
    mc = config.model
    t = config.tensorrt
    kw: dict[str, Any] = {
        "model": model_dir if mc.source in ("builtin", "no_weights") else (
            str(Path(mc.path).expanduser()) if mc.source == "local" else mc.path),
        "skip_tokenizer_init": True,
        "dtype": dtype_for(config),
        "tensor_parallel_size": t.tensor_parallel_size,
        "build_config": build_config_kwargs(config),
        "kv_cache_config": kv_cache_kwargs(config),
    }
    q = quant_kwargs(config)
    if q is not None:
        kw["quant_config"] = q
    if mc.source == "hub" and mc.revision is not None:
        kw["revision"] = mc.revision
    kw.update(t.extra_llm_args)
    return kw


def sampling_kwargs(config, *, end_id: int, pad_id: int, max_tokens: Optional[int] = None) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments: exactly ``output_len`` tokens per prompt, greedy unless
    ``tensorrt.extra_sampling_params`` sets sampling, token ids only."""
    n = max_tokens if max_tokens is not None else config.output_len
    kw: dict[str, Any] = {"max_tokens": n, "min_tokens": n, "ignore_eos": True, "detokenize": False,
                          "end_id": end_id, "pad_id": pad_id, "seed": config.seed}
    kw.update(config.tensorrt.extra_sampling_params)
    return kw


# --- the backend -------------------------------------------------------------------------------
def _import_api():
    """The TensorRT-LLM classes, from the modules the recorded surface names."""
    import importlib

    out = {}
    for name, modules in api_surface()["imports"].items():
        for mod in modules:
            try:
                obj = getattr(importlib.import_module(mod), name, None)
            except ImportError:
                obj = None
            if obj is not None:
                out[name] = obj
                break
        else:
            raise ImportError(f"TensorRT-LLM has no {name} in {', '.join(modules)} (API changed?)")
    return out


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, config, devices) -> None:
        super().__init__(config, devices)
        self.llm = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self.latency_path: Optional[str] = None

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import tensorrt_llm  # noqa: F401
        except ImportError as err:
            return False, (f"tensorrt_llm is not importable ({err}). TensorRT-LLM installs only from NVIDIA's "
                           "package index or NGC containers (its PyPI package is a placeholder): run it with "
                           "runner.tensorrt=container and the llenergymeasure/tensorrt image "
                           "(scripts/build-images.sh tensorrt), or runner.tensorrt=venv:<venv with tensorrt_llm>. "
                           "llem's TensorRT-LLM backend is untested on real TensorRT-LLM (docs/tensorrt.md)")
        except Exception as err:  # CUDA libraries missing and friends
            return False, f"tensorrt_llm failed to import: {type(err).__name__}: {err}"
        return True, ""

    def version(self) -> Optional[str]:
        import tensorrt_llm

        return getattr(tensorrt_llm, "__version__", None)

    def _write_random_checkpoint(self) -> str:
        """A Hugging Face checkpoint with random weights for builtin/no_weights models: TensorRT-LLM
        builds its engine from weights on disk (same shapes, same compute as the real model)."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from llem.models.sources import architecture_config, load_builtin_tokenizer

        self._tmp = tempfile.TemporaryDirectory(prefix=f"llem-trt-{os.getuid()}-")
        d = Path(self._tmp.name)
        torch.manual_seed(self.config.seed)
        dtype = getattr(torch, "bfloat16" if dtype_for(self.config) == "bfloat16" else "float16")
        hf = AutoConfig.for_model(**architecture_config(self.config.model))
        model = AutoModelForCausalLM.from_config(hf, dtype=dtype)
        model.save_pretrained(d, safe_serialization=True)
        load_builtin_tokenizer().save_pretrained(d)
        del model
        return str(d)

    def _check_runtime(self, api) -> None:
        """Extra arguments that the installed TensorRT-LLM does not know, before the engine builds."""
        import difflib

        t = self.config.tensorrt
        llm_args = None
        try:
            from tensorrt_llm.llmapi import TrtLlmArgs as llm_args  # type: ignore
        except ImportError:
            pass
        fields = set(getattr(llm_args, "model_fields", {}) or ())
        for key in t.extra_llm_args:
            if fields and key not in fields:
                near = difflib.get_close_matches(key, sorted(fields), n=3)
                raise ConfigError(f"tensorrt.extra_llm_args.{key} is not an LLM argument of TensorRT-LLM "
                                  f"{self.version()}; allowed: TrtLlmArgs fields"
                                  + (f" (did you mean {', '.join(near)}?)" if near else ""),
                                  field=f"tensorrt.extra_llm_args.{key}", value=t.extra_llm_args[key])

    def load(self) -> None:
        from llem.models.sources import load_tokenizer

        check_config(self.config)
        ok, why = self.is_available()
        if not ok:
            from llem.errors import BackendUnavailableError

            raise BackendUnavailableError(why)
        api = _import_api()
        self._check_runtime(api)
        mc = self.config.model
        if mc.source == "hub":
            from llem.models.offline import ensure_online

            ensure_online(f"model {mc.path!r}")
        model_dir = self._write_random_checkpoint() if mc.source in ("builtin", "no_weights") else None
        kw = llm_kwargs(self.config, model_dir)
        self.llm_kwargs = kw
        built = dict(kw)
        built["build_config"] = api["BuildConfig"](**kw["build_config"])
        built["kv_cache_config"] = api["KvCacheConfig"](**kw["kv_cache_config"])
        if "quant_config" in kw:
            q = dict(kw["quant_config"])
            q["quant_algo"] = getattr(api["QuantAlgo"], q["quant_algo"])
            built["quant_config"] = api["QuantConfig"](**q)
        self.tokenizer = load_tokenizer(mc)
        self.llm = api["LLM"](**built)
        self.vocab_size = int(getattr(self.tokenizer, "vocab_size", 0) or len(self.tokenizer))
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        SP = api["SamplingParams"]
        self._sampling = SP(**sampling_kwargs(self.config, end_id=eos, pad_id=pad))
        self._prefill_sampling = SP(**sampling_kwargs(self.config, end_id=eos, pad_id=pad, max_tokens=1))

    # --- generation ------------------------------------------------------------------------
    def prepare(self, prompts: list[list[int]]) -> PreparedBatch:
        payload = [list(p) for p in prompts]
        return PreparedBatch(prompts=prompts, payload=payload, input_tokens=sum(len(p) for p in prompts))

    _count = staticmethod(count_request_outputs)

    def generate(self, batch: PreparedBatch, *, timing: bool = False) -> GenerationOutput:
        if timing:
            return self._generate_streaming(batch)
        start = time.perf_counter()
        outs = self.llm.generate(batch.payload, sampling_params=self._sampling, use_tqdm=False)
        return self._count(outs, start, time.perf_counter())

    def prefill(self, batch: PreparedBatch) -> GenerationOutput:
        start = time.perf_counter()
        outs = self.llm.generate(batch.payload, sampling_params=self._prefill_sampling, use_tqdm=False)
        return self._count(outs, start, time.perf_counter())

    def _generate_streaming(self, batch: PreparedBatch) -> GenerationOutput:
        """Every prompt through ``generate_async(streaming=True)`` at once: a host timestamp for each
        token when its step's output reaches Python."""
        llm, sp = self.llm, self._sampling

        async def one(prompt):
            times: list[float] = []
            seen = 0
            async for out in llm.generate_async(prompt, sampling_params=sp, streaming=True):
                now = time.perf_counter()
                k = len(out.outputs[0].token_ids)
                times.extend([now] * (k - seen))
                seen = k
            return times

        async def all_():
            return await asyncio.gather(*(one(p) for p in batch.payload))

        start = time.perf_counter()
        per_request = asyncio.run(all_())
        end = time.perf_counter()
        self.latency_path = "LLM.generate_async(streaming=True), all prompts at once (host timestamps)"
        return GenerationOutput(input_tokens=batch.input_tokens, output_tokens=sum(len(t) for t in per_request),
                                num_requests=len(per_request), token_times=per_request, start_time=start, end_time=end)

    # --- facts -----------------------------------------------------------------------------
    def synchronize(self) -> None:
        sync_existing_cuda_context()

    def device_label(self) -> str:
        return "cuda"

    def describe(self) -> dict[str, Any]:
        return {"api": "tensorrt_llm LLM (TensorRT-engine flow)",
                "recorded_api_version": api_surface()["tensorrt_llm_version"],
                "tested_on_real_tensorrt_llm": False,
                "latency_path": self.latency_path,
                "llm_kwargs": getattr(self, "llm_kwargs", {})}

    def close(self) -> None:
        import gc

        if self.llm is not None:
            try:
                self.llm.shutdown()
            except Exception:
                pass
        self.llm = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        gc.collect()
