"""Loading and precision: the ``from_pretrained``/``from_config`` call, its keyword arguments
(typed ``pytorch:`` loading fields, then ``extra_load_kwargs``), fp32/fp16/bf16 dtypes, int8/int4
weights through bitsandbytes or torchao, and the checks that the weights landed where the
meter reads energy.

One concern of ``PyTorchBackend`` (``backend.py``): the mixin shares the backend's state.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from llem.backends.pytorch import checks
from llem.errors import ConfigError


DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _cache_dir() -> Path:
    return Path(os.environ.get("LLEM_CACHE_DIR", Path.home() / ".cache" / "llem"))


class LoadingMixin:
    """PyTorchBackend's loading, precision and quantisation."""

    def preflight(self) -> None:
        import importlib.util

        import torch

        cfg, pt = self.config, self.config.pytorch
        cuda = checks.cuda_available()
        if cfg.device.startswith("cuda") and not cuda:
            raise ConfigError(f"device={cfg.device} but torch {torch.__version__} sees no CUDA GPU; allowed here: auto, cpu")
        if cfg.precision in ("int8", "int4"):
            self._quant_library()  # raises with the reason
        if cfg.precision == "bf16" and cuda and self._device().startswith("cuda") and not torch.cuda.is_bf16_supported():
            raise ConfigError("precision=bf16 is not supported by this GPU; allowed: fp32, fp16")
        if pt.attn_implementation in ("flash_attention_2", "flash_attention_3"):
            mod = "flash_attn" if pt.attn_implementation == "flash_attention_2" else "flash_attn_interface"
            if importlib.util.find_spec(mod) is None or not cuda:
                raise ConfigError(f"pytorch.attn_implementation={pt.attn_implementation} needs a CUDA GPU and the "
                                  f"`{mod}` package; allowed here: sdpa, eager")
        if pt.tp_plan:
            n = self.tp_world_size()
            if self._device().startswith("cuda") and n > torch.cuda.device_count():
                raise ConfigError(f"pytorch.tp_size={n} but only {torch.cuda.device_count()} GPUs are visible "
                                  "(CUDA_VISIBLE_DEVICES); allowed: 2..visible GPUs")
            if n < 2:
                raise ConfigError(f"pytorch.tp_size={n}: tensor parallelism needs at least 2 processes; allowed: >= 2")

    def _quant_library(self) -> str:
        import importlib.util

        prec, want = self.config.precision, self.config.pytorch.quantization
        have = {lib: importlib.util.find_spec(lib) is not None for lib in ("bitsandbytes", "torchao")}
        if not checks.cuda_available():
            raise ConfigError(f"precision={prec} needs a CUDA GPU (bitsandbytes/torchao quantisation); "
                              "allowed here: fp32, fp16, bf16")
        order = ["bitsandbytes", "torchao"] if want == "auto" else [want]
        for lib in order:
            if have[lib]:
                return lib
        raise ConfigError(f"precision={prec} needs {' or '.join(order)} (`pip install {order[0]}`); "
                          "allowed without it: fp32, fp16, bf16")

    def _device(self) -> str:
        import torch

        dev = self.config.device
        if getattr(self, "_world", 1) > 1 and torch.cuda.is_available() and dev != "cpu":
            return f"cuda:{self._rank}"
        if dev == "auto":
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if dev == "cuda":
            return "cuda:0"
        return dev

    def _torch_dtype(self):
        import torch

        prec = self.config.precision
        if prec in DTYPES:
            return getattr(torch, DTYPES[prec])
        return torch.bfloat16  # int8/int4: the layers left unquantized compute in bf16

    def quantization_config(self):
        prec = self.config.precision
        if prec not in ("int8", "int4"):
            return None
        import torch

        lib = self._quant_library()
        try:
            version = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:  # importable but not pip-installed
            version = None
        if lib == "bitsandbytes":
            from transformers import BitsAndBytesConfig

            if prec == "int8":
                self.quantization = {"library": lib, "version": version, "scheme": "LLM.int8 (load_in_8bit)"}
                return BitsAndBytesConfig(load_in_8bit=True)
            self.quantization = {"library": lib, "version": version, "scheme": "nf4 (load_in_4bit)",
                                 "compute_dtype": "bfloat16"}
            return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                      bnb_4bit_compute_dtype=torch.bfloat16)
        from transformers import TorchAoConfig

        try:  # torchao >= 0.10: config objects
            from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig
        except ImportError:
            self.quantization = {"library": lib, "version": version, "scheme": f"{prec}_weight_only, group 128"}
            return TorchAoConfig("int8_weight_only" if prec == "int8" else "int4_weight_only", group_size=128)
        if prec == "int8":
            self.quantization = {"library": lib, "version": version, "scheme": "Int8WeightOnlyConfig"}
            return TorchAoConfig(quant_type=Int8WeightOnlyConfig())
        q, packing = self._torchao_int4(Int4WeightOnlyConfig)
        self.quantization = {"library": lib, "version": version, "scheme": "Int4WeightOnlyConfig, group 128",
                             "int4_packing_format": packing}
        return TorchAoConfig(quant_type=q)

    @staticmethod
    def _torchao_int4(config_cls):
        """torchao's default int4 layout ("plain", torchao >= 0.14) runs on kernels from the
        separate ``mslk`` package; without it loading fails halfway through the weights (seen on
        an H100 with torchao 0.17). The tinygemm layout's kernel ships with torch itself."""
        if importlib.util.find_spec("mslk") is not None:
            return config_cls(group_size=128), "plain (mslk kernels)"
        try:
            return config_cls(group_size=128, int4_packing_format="tile_packed_to_4d"), \
                "tile_packed_to_4d (tinygemm kernel in torch; mslk not installed)"
        except TypeError:  # torchao before 0.14: one layout, no choice to make
            return config_cls(group_size=128), "torchao default (no int4_packing_format in this version)"

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained`` from the typed section and the passthrough."""
        pt = self.config.pytorch
        kw: dict[str, Any] = {"dtype": self._torch_dtype()}
        if pt.attn_implementation is not None:
            kw["attn_implementation"] = pt.attn_implementation
        if pt.device_map is not None:
            kw["device_map"] = pt.device_map
        elif self.config.precision in ("int8", "int4") and not pt.tp_plan:
            # quantised weights are placed while loading, where device_map says: without one,
            # torchao left them on the CPU (an H100 run measured an idle GPU)
            kw["device_map"] = {"": self._device()}
        if pt.max_memory is not None:
            kw["max_memory"] = pt.max_memory
        # transformers >= 5 accepts and ignores it (loading is always low-memory); kept for 4.x
        kw["low_cpu_mem_usage"] = pt.low_cpu_mem_usage
        kw["trust_remote_code"] = pt.trust_remote_code
        q = self.quantization_config()
        if q is not None:
            kw["quantization_config"] = q
        if pt.tp_plan:
            try:
                from transformers.distributed.configuration_utils import DistributedConfig
            except ImportError:  # older transformers take the plan directly
                kw["tp_plan"], kw["tp_size"] = pt.tp_plan, self.tp_world_size()
            else:
                kw["distributed_config"] = DistributedConfig(tp_size=self.tp_world_size())
        kw.update(pt.extra_load_kwargs)
        return kw

    def _needs_checkpoint(self) -> bool:
        """A random-weight model goes through ``from_pretrained`` (via a cached checkpoint) when
        a loading feature exists only there: sharding, quantisation, tensor parallelism."""
        pt = self.config.pytorch
        return bool(pt.device_map is not None or pt.tp_plan or self.config.precision in ("int8", "int4")
                    or pt.max_memory is not None or pt.extra_load_kwargs)

    def random_weights_checkpoint(self) -> Path:
        """Seeded random weights of a shipped architecture, saved once under ~/.cache/llem."""
        import torch
        from filelock import FileLock
        from transformers import AutoConfig, AutoModelForCausalLM

        from llem.models.sources import architecture_config

        mc = self.config.model
        dtype = self._torch_dtype()
        d = _cache_dir() / "no_weights" / f"{mc.architecture}-{str(dtype).removeprefix('torch.')}-seed{self.config.seed}"
        d.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(d) + ".lock"):
            if not (d / "config.json").is_file():
                torch.manual_seed(self.config.seed)
                model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**architecture_config(mc)), dtype=dtype)
                tmp = d.with_name(d.name + ".tmp")
                model.save_pretrained(tmp)
                del model
                tmp.rename(d)
        return d

    def start(self) -> None:
        """Import transformers and the architecture's model code, and create the CUDA context:
        costs of a fresh process (seconds), not of loading this model."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
        import transformers.generation  # noqa: F401  (generate's machinery, imported lazily otherwise)

        from llem.models.sources import architecture_config

        self.device = self._device()
        if str(self.device).startswith("cuda"):
            torch.zeros(1, device=self.device)  # the CUDA context and the allocator
        mc = self.config.model
        if mc.source in ("builtin", "no_weights"):
            # building the architecture on the meta device allocates nothing and imports its
            # modelling module (transformers imports each architecture on first use)
            with torch.device("meta"):
                AutoModelForCausalLM.from_config(AutoConfig.for_model(**architecture_config(mc)))

    def load(self) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from llem.models.sources import architecture_config, gguf_source, load_tokenizer

        mc, pt = self.config.model, self.config.pytorch
        steps = self.load_steps_s
        t = time.perf_counter()
        if pt.tp_plan and self._world == 1 and self._rank == 0:
            self._start_tensor_parallel()
            steps["tensor_parallel_start"] = time.perf_counter() - t
        self.device = self._device()
        torch.manual_seed(self.config.seed)
        t = time.perf_counter()
        self.tokenizer = load_tokenizer(mc)
        steps["tokenizer"] = time.perf_counter() - t
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        kw = self.load_kwargs()
        t = time.perf_counter()
        if mc.source in ("builtin", "no_weights") and not self._needs_checkpoint():
            hf_cfg = AutoConfig.for_model(**architecture_config(mc))
            # Random init directly on the target device: an 8B model never touches host RAM.
            with torch.device(self.device):
                model = AutoModelForCausalLM.from_config(
                    hf_cfg, dtype=kw["dtype"], trust_remote_code=kw["trust_remote_code"],
                    **({"attn_implementation": kw["attn_implementation"]} if "attn_implementation" in kw else {}))
        else:
            if mc.source in ("builtin", "no_weights"):
                src: Any = str(self.random_weights_checkpoint())
                self.load_notes.append(f"random weights saved once to {src} so from_pretrained can shard/quantise them")
            else:
                src = mc.path
            if mc.source == "gguf":
                src, kw["gguf_file"] = gguf_source(mc)
            if mc.source == "hub":
                from llem.models.offline import ensure_online

                ensure_online(f"model {mc.path!r}")
                if mc.revision:
                    kw["revision"] = mc.revision
            model = AutoModelForCausalLM.from_pretrained(src, **kw)
        steps["model"] = time.perf_counter() - t
        placed = pt.device_map is not None or pt.tp_plan or self.config.precision in ("int8", "int4")
        if not placed:
            t = time.perf_counter()
            model = model.to(self.device)
            steps["to_device"] = time.perf_counter() - t
        self._check_placement(model)
        model.eval()
        if pt.torch_compile:
            ckw = {k: v for k, v in (("mode", pt.torch_compile_mode), ("backend", pt.torch_compile_backend)) if v}
            model.forward = torch.compile(model.forward, **ckw)
        self.model = model
        self.vocab_size = int(model.config.vocab_size)
        # built once, outside every window: a bare loop passes a ready dict to generate too
        self._generate_kw = self.generate_kwargs()
        t = time.perf_counter()
        self._cache_kwarg = self._shared_static_cache_kwarg(model)
        steps["static_cache"] = time.perf_counter() - t
        if self._cache_kwarg:
            # the cache object goes in instead; transformers refuses both together
            del self._generate_kw["cache_implementation"]
            self.load_notes.append("static KV cache: one cache per batch size for the whole job, reset before each "
                                   "call (pytorch.reuse_static_cache)")
        self._prefill_kw = dict(self._generate_kw, max_new_tokens=1, min_new_tokens=1)
        if self._world > 1 and self._rank == 0:
            self._check_followers()
            self._tp_in_sync = True
        self._reset_peak_memory()

    def _check_placement(self, model) -> None:
        """The energy read is the job's GPUs': weights anywhere else make it the wrong number.
        Without an explicit device_map every parameter must be on the job's device; with one,
        accelerate's CPU/disk offload is allowed but said in the result."""
        import torch

        want = torch.device(self.device)
        if want.type != "cuda" or self._world > 1:
            return
        pt = self.config.pytorch
        if pt.device_map is None:
            where: dict[str, int] = {}
            for prm in model.parameters():
                d = prm.device
                if d.type != "cuda" or (d.index or 0) != (want.index or 0):
                    where[str(d)] = where.get(str(d), 0) + 1
            if where:
                raise RuntimeError(f"after loading, parameters are on {', '.join(f'{k} ({n})' for k, n in where.items())} "
                                   f"instead of {want}: the GPU's energy would not be the model's "
                                   f"(precision={self.config.precision}, pytorch.quantization={pt.quantization})")
            return
        off = sorted({str(v) for v in (getattr(model, "hf_device_map", None) or {}).values()} & {"cpu", "disk"})
        if off:
            self.load_warnings.append(f"pytorch.device_map offloaded part of the model to {' and '.join(off)}: that "
                                      "part runs on the host, whose energy the GPU meter does not read")
