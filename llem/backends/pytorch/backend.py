"""PyTorch / transformers backend: ``model.generate`` with a fixed output length.

Everything the ``pytorch:`` section types reaches one of three calls: ``from_pretrained`` (or
``from_config`` for a plain single-device random-weight model), ``torch.compile``, or
``model.generate``. ``extra_load_kwargs``/``extra_generate_kwargs`` carry anything untyped to
the same calls. Keys llem controls itself (output length, dtype) are refused in the passthrough,
so a result never claims one setting while running another.

``PyTorchBackend`` is assembled from one mixin per concern, each in its own module: loading and
precision (``loading.py``), decoding parameters and passthrough (``decoding.py``), generation
(``generation.py``) and tensor-parallel followers (``tensor_parallel.py``). This module holds its
state and what it reports about itself (version, memory, FLOPs, devices used) and closes it.
"""
from __future__ import annotations

from typing import Any, Optional

from llem.backends.base import Backend, PreparedBatch
from llem.backends.pytorch.decoding import DecodingMixin
from llem.backends.pytorch.generation import GenerationMixin
from llem.backends.pytorch.loading import LoadingMixin
from llem.backends.pytorch.tensor_parallel import TensorParallelMixin


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


class PyTorchBackend(LoadingMixin, DecodingMixin, GenerationMixin, TensorParallelMixin, Backend):
    name = "pytorch"

    def __init__(self, config, devices) -> None:
        super().__init__(config, devices)
        self.model = None
        self.tokenizer = None
        self.load_notes: list[str] = []
        self.load_steps_s: dict[str, float] = {}  # where load_time_s went, step by step
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

    def device_label(self) -> str:
        if self._world > 1:
            return f"{self.device} (tensor parallel x{self._world})"
        used = self.devices_used()
        if len(used) > 1:
            return "cuda:" + ",".join(map(str, used)) + " (device_map)"
        return str(self.device)

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
