"""PyTorch / transformers backend: ``model.generate`` with a fixed output length.

Everything the ``pytorch:`` section types reaches one of three calls: ``from_pretrained`` (or
``from_config`` for a plain single-device random-weight model), ``torch.compile``, or
``model.generate``. ``extra_load_kwargs``/``extra_generate_kwargs`` carry anything untyped to
the same calls. Keys llem controls itself (output length, dtype) are refused in the passthrough,
so a result never claims one setting while running another.

Tensor parallelism (``tp_plan: auto``): this process becomes rank 0 and starts ``tp_size - 1``
follower processes (``python -m llem.backends.pytorch --tp-follower``), the same rendezvous
``torchrun`` would set up. Rank 0 runs the harness and meters; followers mirror every
``prepare``/``generate`` it broadcasts, so each collective has all its ranks.

Shutdown is bounded (``PyTorchBackend.close``): rank 0 broadcasts a stop and closes each
follower's stdin. A follower waiting for the next command gets the broadcast; the closed pipe
reaches it wherever else it is blocked, and it exits by itself after a grace period. Rank 0
tears its process group down *beside* the wait, because NCCL's communicator teardown is
collective (pytorch/pytorch#122358): a follower in ``destroy_process_group`` waits for rank 0
to do the same. A follower still alive after ``stop_timeout_s`` is terminated, then killed, and
``close()`` records that in ``shutdown_warnings`` instead of raising.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from llem.backends.base import Backend, GenerationOutput, PreparedBatch
from llem.config.pytorch_options import TYPED_GENERATE
from llem.errors import ConfigError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

def cache_kwarg(model) -> str:
    """The name under which this transformers' ``generate`` takes a ready cache object: it renamed
    ``past_key_values`` to ``cache`` (the old name still works there, with a warning)."""
    import inspect

    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def static_cache_len(width: int, output_len: int) -> int:
    """transformers' own static-cache length for a prompt width (max_length - 1: the last token
    is never attended to). A longer cache is another shape, and compiled decoding recompiles."""
    return width + output_len - 1


def new_static_cache(model, width: int, output_len: int) -> Any:
    from transformers import StaticCache

    return StaticCache(config=model.config.get_text_config(decoder=True),
                       max_cache_len=static_cache_len(width, output_len))


class _TimingStreamer:
    """Records a perf_counter() timestamp each time generate hands over a step's new tokens.

    transformers calls ``put(next_tokens.cpu())``: the copy waits for the device, so the
    timestamp marks when the step's tokens existed on the host. The first ``put`` carries
    the prompt and is skipped. With static batching every row of a batch gets its token in
    the same step, so one list of times serves all rows.
    """

    __slots__ = ("times", "_seen_prompt")

    def __init__(self) -> None:
        self.times: list[float] = []
        self._seen_prompt = False

    def put(self, value) -> None:
        if self._seen_prompt:
            self.times.append(time.perf_counter())
        else:
            self._seen_prompt = True

    def end(self) -> None:
        pass


def _tensor_bytes(t, dtensor) -> int:
    import torch

    # a tensor-parallel shard (DTensor) counts at its logical, all-ranks size, like an unsharded model
    if not isinstance(t, dtensor) and getattr(type(t), "__tensor_flatten__", None) is not None:
        # a wrapper subclass (torchao's quantised weights): its outer dtype is not what it stores
        names, _ = t.__tensor_flatten__()
        inner = [x for x in (getattr(t, n, None) for n in names) if isinstance(x, torch.Tensor)]
        if inner:
            return sum(_tensor_bytes(x, dtensor) for x in inner)
    return t.numel() * t.element_size()


def _stored_bytes(model) -> int:
    """Bytes the model's parameters and buffers occupy (each tied tensor once)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # a torch without distributed
        DTensor = ()
    tensors = [*model.parameters(), *model.buffers()]
    return int(sum(_tensor_bytes(t, DTensor) for t in tensors))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FOLLOWER_ARGS = ("-m", "llem.backends.pytorch", "--tp-follower")
# a follower that stopped on its own stdin watchdog rather than by finishing normally
WATCHDOG_EXIT = 3


def _die_with_parent() -> None:
    """In a follower, before exec: ask Linux to SIGTERM it when the job process dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _watch_for_stop(grace_s: float) -> None:
    """In a follower: rank 0 closing our stdin (or dying) means stop. The in-band stop only reaches
    a follower waiting in ``serve()``; EOF reaches it in a collective whose peer has gone or in a
    hung teardown, so after ``grace_s`` for a normal exit the process ends itself."""
    import threading

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        time.sleep(grace_s)
        print(f"llem tensor-parallel follower: still running {grace_s:g} s after rank 0 stopped; exiting",
              file=sys.stderr, flush=True)
        os._exit(WATCHDOG_EXIT)

    threading.Thread(target=watch, name="llem-tp-stop", daemon=True).start()


def _cache_dir() -> Path:
    return Path(os.environ.get("LLEM_CACHE_DIR", Path.home() / ".cache" / "llem"))


class PyTorchBackend(Backend):
    name = "pytorch"
    # close(): how long followers get to exit after the stop, then after SIGTERM before SIGKILL
    stop_timeout_s = 30.0
    kill_timeout_s = 5.0

    def __init__(self, config, devices) -> None:
        super().__init__(config, devices)
        self.model = None
        self.tokenizer = None
        self.load_notes: list[str] = []
        #: said in the result's warnings (e.g. part of the model offloaded to the host)
        self.load_warnings: list[str] = []
        #: library, version and scheme of int8/int4 weights, for measurement_methodology
        self.quantization: Optional[dict[str, Any]] = None
        self._rank = 0
        self._world = 1
        self._followers: list = []
        # False while rank 0 is between broadcasting a command and finishing it: a stop broadcast
        # then would pair with a follower's collective, so close() relies on the pipe alone
        self._tp_in_sync = True
        self._closed = False
        self.shutdown_warnings: list[str] = []
        self._batches: list[PreparedBatch] = []
        self._peak_after_load: dict = {}
        # reuse_static_cache: the generate kwarg that takes a cache (None: transformers builds its own
        # per call), the widest prepared batch, and per row count (width sized for, cache)
        self._cache_kwarg: Optional[str] = None
        self._widest = 0
        self._static_caches: dict[int, tuple[int, Any]] = {}
        self.preflight()

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as err:
            return False, f"{err}; install with `pip install llenergymeasure[pytorch]`"
        return True, ""

    def version(self) -> Optional[str]:
        import transformers

        return transformers.__version__

    # --- checks that depend on this machine, before anything loads ----------------------------
    def preflight(self) -> None:
        import importlib.util

        import torch

        cfg, pt = self.config, self.config.pytorch
        cuda = torch.cuda.is_available()
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

        import torch

        prec, want = self.config.precision, self.config.pytorch.quantization
        have = {lib: importlib.util.find_spec(lib) is not None for lib in ("bitsandbytes", "torchao")}
        if not torch.cuda.is_available():
            raise ConfigError(f"precision={prec} needs a CUDA GPU (bitsandbytes/torchao quantisation); "
                              "allowed here: fp32, fp16, bf16")
        order = ["bitsandbytes", "torchao"] if want == "auto" else [want]
        for lib in order:
            if have[lib]:
                return lib
        raise ConfigError(f"precision={prec} needs {' or '.join(order)} (`pip install {order[0]}`); "
                          "allowed without it: fp32, fp16, bf16")

    # --- loading --------------------------------------------------------------------------
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

    def tp_world_size(self) -> int:
        import torch

        pt = self.config.pytorch
        if not pt.tp_plan:
            return 1
        if pt.tp_size:
            return pt.tp_size
        if self.config.device != "cpu" and torch.cuda.is_available():
            return torch.cuda.device_count()
        return 2

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

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if getattr(self, "quantization", None) is not None:
            d["quantization"] = self.quantization
        model = getattr(self, "model", None)
        if model is not None and getattr(model, "config", None) is not None:
            d["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        if self.load_notes:
            d["load_notes"] = list(self.load_notes)
        return d

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

    def generate_kwargs(self) -> dict[str, Any]:
        pt = self.config.pytorch
        n = self.config.output_len
        kw: dict[str, Any] = {
            "max_new_tokens": n,
            "min_new_tokens": n,  # fixed output length: random weights emit EOS early
            "do_sample": pt.do_sample,
            "num_beams": pt.num_beams,
            "use_cache": pt.use_cache,
        }
        if pt.do_sample:
            kw["temperature"] = pt.temperature
        for k in TYPED_GENERATE:
            v = getattr(pt, k)
            if k not in kw and k != "temperature" and v is not None:
                kw[k] = v
        if getattr(self, "pad_id", None) is not None:
            kw["pad_token_id"] = self.pad_id
        kw.update(pt.extra_generate_kwargs)
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

    def load(self) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from llem.models.sources import architecture_config, load_tokenizer

        mc, pt = self.config.model, self.config.pytorch
        if pt.tp_plan and self._world == 1 and self._rank == 0:
            self._start_tensor_parallel()
        self.device = self._device()
        torch.manual_seed(self.config.seed)
        self.tokenizer = load_tokenizer(mc)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        kw = self.load_kwargs()
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
                p = Path(mc.path).expanduser()
                if mc.gguf_file:
                    src, kw["gguf_file"] = str(p), mc.gguf_file
                else:
                    src, kw["gguf_file"] = str(p.parent), p.name
            if mc.source == "hub":
                from llem.models.offline import ensure_online

                ensure_online(f"model {mc.path!r}")
                if mc.revision:
                    kw["revision"] = mc.revision
            model = AutoModelForCausalLM.from_pretrained(src, **kw)
        placed = pt.device_map is not None or pt.tp_plan or self.config.precision in ("int8", "int4")
        if not placed:
            model = model.to(self.device)
        self._check_placement(model)
        model.eval()
        if pt.torch_compile:
            ckw = {k: v for k, v in (("mode", pt.torch_compile_mode), ("backend", pt.torch_compile_backend)) if v}
            model.forward = torch.compile(model.forward, **ckw)
        self.model = model
        self.vocab_size = int(model.config.vocab_size)
        # built once, outside every window: a bare loop passes a ready dict to generate too
        self._generate_kw = self.generate_kwargs()
        self._cache_kwarg = self._shared_static_cache_kwarg(model)
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

    def _shared_static_cache_kwarg(self, model) -> Optional[str]:
        """The generate kwarg that takes llem's own static cache, or None where transformers keeps
        building one per call. A new cache per call lands at new addresses, and the static-address
        KV tensors are CUDA-graph inputs: compiled decoding re-records its graphs (11-24 ms each on an H100)
        whenever the addresses are new, in measured windows too. One cache, reset before each
        call, keeps them fixed. Only for plain static caching on one process: beams and extra
        return sequences size the cache differently, and tensor-parallel ranks shard it."""
        pt = self.config.pytorch
        if not (pt.reuse_static_cache and pt.cache_implementation == "static" and pt.use_cache
                and pt.num_beams == 1 and self._world == 1
                and pt.extra_generate_kwargs.get("num_return_sequences", 1) == 1):
            return None
        return cache_kwarg(model)

    def _static_cache(self, rows: int) -> Any:
        """This row count's cache, reset (the zeroing a fresh cache does too), or a new one when
        none is long enough: sized for the longest prepared batch, so one per job."""
        have = self._static_caches.get(rows)
        if have is not None and have[0] >= self._widest:
            have[1].reset()
            return have[1]
        cache = new_static_cache(self.model, self._widest, self.config.output_len)
        self._static_caches[rows] = (self._widest, cache)
        return cache

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

    # --- tensor parallelism -------------------------------------------------------------------
    def _start_tensor_parallel(self) -> None:
        import subprocess
        from datetime import timedelta

        import torch
        import torch.distributed as dist

        n = self.tp_world_size()
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(n),
                   LOCAL_WORLD_SIZE=str(n), LLEM_TP_CONFIG=json.dumps(self.config.model_dump(mode="json")),
                   # under rank 0's wait, so a follower that can exit by itself does before it is killed
                   LLEM_TP_STOP_GRACE_S=str(self.stop_timeout_s / 2))
        if self.config.device == "cpu" or not torch.cuda.is_available():
            # two CPU ranks on the same cores: one thread each keeps them from fighting
            env.setdefault("OMP_NUM_THREADS", "1")
        self._tp_in_sync = False  # until every rank has loaded
        for r in range(1, n):
            self._followers.append(subprocess.Popen(
                [sys.executable, *FOLLOWER_ARGS], stdin=subprocess.PIPE,
                env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), preexec_fn=_die_with_parent))
        import atexit

        # a failed job must not leave followers blocked in a collective until its timeout
        atexit.register(lambda: [p.kill() for p in self._followers if p.poll() is None])
        for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            os.environ[k] = env[k]
        os.environ.update(RANK="0", LOCAL_RANK="0")
        # set before the rendezvous: if it fails, close() still stops the followers already started
        self._world = n
        use_cuda = self.config.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(0)
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=0, world_size=n, timeout=timedelta(minutes=10))
        self.load_notes.append(f"tensor parallel over {n} ranks (rank 0 here, {n - 1} follower processes)")

    def _check_followers(self) -> None:
        dead = [p.returncode for p in self._followers if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a tensor-parallel follower exited with code {dead[0]} during loading")

    def _broadcast(self, msg) -> Any:
        import torch.distributed as dist

        box = [msg]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _gather(self, mine) -> list:
        import torch.distributed as dist

        out = [None] * self._world
        dist.all_gather_object(out, mine)
        return out

    def freeze_workers_heap(self) -> Optional[list[int]]:
        if self._world <= 1 or self._rank != 0:
            return None
        self._tp_in_sync = False
        self._broadcast(("gc_freeze", None))
        counts = self._gather(None)  # every follower answers once frozen: a barrier before the window
        self._tp_in_sync = True
        return counts[1:]

    def serve(self) -> None:
        """Follower loop (rank > 0): mirror rank 0's prepare/generate calls until told to stop."""
        while True:
            kind, arg = self._broadcast(None)
            if kind == "stop":
                return
            if kind == "gc_freeze":
                import gc

                # rank 0's freeze (llem/measure/gcfreeze.py), here without its bookkeeping: collect,
                # freeze what survives, answer the frozen count. Never released: the follower exits
                # when the job's passes are over.
                gc.collect()
                gc.freeze()
                self._gather(gc.get_freeze_count())
            elif kind == "prepare":
                self._batches.append(self._prepare_local(arg))
            elif kind == "generate":
                idx, phase = arg
                kw = self._generate_kw if phase == "full" else self._prefill_kw
                self._generate(self._batches[idx], kw, False)

    def devices_used(self) -> list[int]:
        """CUDA indices (as this job sees them) that hold part of the model."""
        if not str(getattr(self, "device", "cpu")).startswith("cuda") and self._world == 1:
            return []
        if self._world > 1:
            return list(range(self._world))
        dm = getattr(self.model, "hf_device_map", None)
        if dm:
            idx = set()
            for v in dm.values():
                s = str(v)
                if s.isdigit():
                    idx.add(int(s))
                elif s.startswith("cuda"):
                    idx.add(int(s.split(":")[1]) if ":" in s else 0)
            return sorted(idx)
        return [int(str(self.device).split(":")[1]) if ":" in str(self.device) else 0]

    # --- generation -----------------------------------------------------------------------
    def _prepare_local(self, prompts: list[list[int]]) -> PreparedBatch:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding, as decoder-only generation needs
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        dev = self.model.device if hasattr(self.model, "device") else self.device
        payload = {"input_ids": ids.to(dev), "attention_mask": mask.to(dev)}
        self._widest = max(self._widest, width)
        return PreparedBatch(prompts=prompts, payload=payload, input_tokens=sum(len(p) for p in prompts))

    def prepare(self, prompts: list[list[int]]) -> PreparedBatch:
        if self._world > 1:
            self._tp_in_sync = False
            self._broadcast(("prepare", prompts))
            self._tp_in_sync = True
            b = self._prepare_local(prompts)
            b.extra["tp_index"] = len(self._batches)
            self._batches.append(b)
            return b
        return self._prepare_local(prompts)

    def _generate(self, batch: PreparedBatch, kwargs: dict[str, Any], timing: bool) -> GenerationOutput:
        import torch

        if self._world > 1 and self._rank == 0:
            self._tp_in_sync = False
            self._broadcast(("generate", (batch.extra["tp_index"],
                                          "prefill" if kwargs["max_new_tokens"] == 1 else "full")))
        streamer = _TimingStreamer() if timing else None
        if streamer is not None:
            kwargs = dict(kwargs, streamer=streamer)
        start = time.perf_counter()
        with torch.inference_mode():
            if self._cache_kwarg:
                kwargs = dict(kwargs, **{self._cache_kwarg: self._static_cache(batch.payload["input_ids"].shape[0])})
            out = self.model.generate(**batch.payload, **kwargs)
        end = time.perf_counter()
        self._tp_in_sync = True
        self.last_output_ids = out  # a reference, not a copy: lets tests compare tokens
        n_in = batch.payload["input_ids"].shape[1]
        rows = int(out.shape[0])
        new = int(out.shape[1] - n_in)
        return GenerationOutput(
            input_tokens=batch.input_tokens, output_tokens=new * rows, num_requests=rows,
            token_times=[list(streamer.times) for _ in range(rows)] if streamer else None,
            start_time=start, end_time=end,
        )

    def generate(self, batch: PreparedBatch, *, timing: bool = False) -> GenerationOutput:
        if timing and self.config.pytorch.num_beams > 1:
            raise NotImplementedError("transformers streamers do not support beam search (num_beams > 1)")
        return self._generate(batch, self._generate_kw, timing)

    def prefill(self, batch: PreparedBatch) -> GenerationOutput:
        return self._generate(batch, self._prefill_kw, False)

    def decode_text(self, ids) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def sample_text(self, prompt: str, max_new_tokens: int = 24) -> str:
        """Greedy continuation of one prompt (for humans checking a real model writes sense)."""
        import torch

        enc = self.tokenizer(prompt, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.pad_id)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def synchronize(self) -> None:
        import torch

        if torch.cuda.is_available() and str(self.device).startswith("cuda"):
            for i in self.devices_used() if self._world == 1 else [self._rank]:
                torch.cuda.synchronize(i)

    def device_label(self) -> str:
        if self._world > 1:
            return f"{self.device} (tensor parallel x{self._world})"
        used = self.devices_used()
        if len(used) > 1:
            return "cuda:" + ",".join(map(str, used)) + " (device_map)"
        return str(self.device)

    # --- memory and FLOPs -----------------------------------------------------------------
    def _reset_peak_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            for i in self.devices_used() if self._world == 1 else [self._rank]:
                self._peak_after_load[i] = (torch.cuda.max_memory_allocated(i), torch.cuda.max_memory_reserved(i))
                torch.cuda.reset_peak_memory_stats(i)

    def memory(self) -> Optional[dict[str, Any]]:
        import torch

        if self.model is None:
            return None
        out: dict[str, Any] = {
            "weights_bytes": _stored_bytes(self.model),
            "weights_method": "parameters + buffers as stored (tensor subclasses such as torchao's quantised "
                              "weights counted by their inner tensors; transformers' get_memory_footprint() "
                              "counts those at their outer dtype)",
        }
        devs = self.devices_used() if self._world == 1 else [self._rank]
        if torch.cuda.is_available() and devs:
            per = []
            for i in devs:
                per.append({"cuda_index": i, "peak_allocated_bytes": int(torch.cuda.max_memory_allocated(i)),
                            "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(i)),
                            "load_peak_allocated_bytes": self._peak_after_load.get(i, (None, None))[0]})
            out["per_device"] = per
            out["peak_allocated_bytes"] = sum(d["peak_allocated_bytes"] for d in per)
            out["peak_reserved_bytes"] = sum(d["peak_reserved_bytes"] for d in per)
            out["peak_method"] = ("torch.cuda.max_memory_allocated/reserved since the end of loading (peak stats "
                                  "reset after load), summed over the GPUs holding the model")
            if self._world > 1:
                out["peak_method"] += f"; rank 0's GPU only (other {self._world - 1} ranks not read)"
        else:
            out["peak_allocated_bytes"] = None
            out["peak_reserved_bytes"] = None
            out["peak_not_measured_reason"] = "torch.cuda memory statistics exist only on CUDA devices (CPU run)"
            try:
                import resource

                # ru_maxrss is KiB on Linux; it covers the whole process (Python, libraries, model)
                out["process_peak_rss_bytes"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
            except (ImportError, OSError):
                pass
        return out

    def flops(self, input_len: int, output_len: int, batch: int) -> Optional[dict[str, Any]]:
        from llem.models.flops import model_flops

        if self.model is None:
            return None
        out = model_flops(self.model, input_len, output_len, batch * self.config.pytorch.num_beams)
        out["scope"] = f"one batch of {batch} prompts"
        return out

    def close(self) -> None:
        import gc

        if self._world > 1 and self._rank == 0 and not self._closed:
            self._closed = True
            self.shutdown_warnings.extend(self._stop_followers())
        self.model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass


    def _stop_followers(self) -> list[str]:
        """Stop every follower within ``stop_timeout_s + kill_timeout_s``; what went wrong comes back
        as warnings (by now the measurement is complete or the job has already failed)."""
        import subprocess
        import threading

        import torch
        import torch.distributed as dist

        errors: list[str] = []
        in_sync = self._tp_in_sync

        def teardown() -> None:
            try:
                if in_sync:
                    self._broadcast(("stop", None))
                    if str(getattr(self, "device", "")).startswith("cuda"):
                        # NCCL only enqueued the stop: let it reach the followers before the teardown
                        torch.cuda.synchronize()
                dist.destroy_process_group()
            except Exception as err:
                errors.append(f"{type(err).__name__}: {err}")

        # a thread, so rank 0's (collective) teardown runs while it waits for the followers
        worker = threading.Thread(target=teardown, name="llem-tp-teardown", daemon=True)
        worker.start()
        for p in self._followers:
            try:
                p.stdin.close()
            except (OSError, AttributeError):
                pass
        notes: list[str] = []
        deadline = time.monotonic() + self.stop_timeout_s
        for rank, p in enumerate(self._followers, start=1):
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                how = "terminated (SIGTERM)"
                p.terminate()
                try:
                    p.wait(timeout=self.kill_timeout_s)
                except subprocess.TimeoutExpired:
                    how = "killed (SIGKILL)"
                    p.kill()
                    p.wait()
                notes.append(f"tensor-parallel follower rank {rank} was still running {self.stop_timeout_s:g} s "
                             f"after the stop and was {how}")
                continue
            if p.returncode == WATCHDOG_EXIT:
                notes.append(f"tensor-parallel follower rank {rank} did not finish its shutdown within "
                             f"{self.stop_timeout_s / 2:g} s of the stop and exited by itself")
            elif p.returncode != 0:
                notes.append(f"tensor-parallel follower rank {rank} exited with code {p.returncode} at shutdown")
        worker.join(timeout=self.kill_timeout_s)
        if worker.is_alive():
            notes.append("rank 0's process-group teardown had not finished after the followers stopped; "
                         "left to process exit")
        notes.extend(f"tensor-parallel shutdown on rank 0 failed: {e}" for e in errors)
        return notes


def _follower_main() -> int:
    """Entry of a tensor-parallel follower: rebuild the config rank 0 sent, load, serve."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from llem.config.schema import ExperimentConfig
    from llem.devices import DeviceSet

    cfg = ExperimentConfig.model_validate(json.loads(os.environ["LLEM_TP_CONFIG"]))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    _watch_for_stop(float(os.environ.get("LLEM_TP_STOP_GRACE_S", "15")))
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world, timeout=timedelta(minutes=10))
    be = PyTorchBackend(cfg, DeviceSet(unavailable_reason="tensor-parallel follower: rank 0 meters"))
    be._rank, be._world = rank, world
    be.load()
    be.serve()
    dist.destroy_process_group()
    return 0

