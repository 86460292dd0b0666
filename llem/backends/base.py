"""The backend interface: load a model and generate, nothing about energy.

The harness owns the protocol (baseline, warm-up, windows, cycles); a backend only knows how
to turn batches of token ids into exactly ``output_len`` new tokens per prompt, quickly.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class GenerationOutput:
    """What one ``generate`` call produced. Token counts come from tensor shapes."""

    input_tokens: int
    output_tokens: int
    num_requests: int
    #: per request: perf_counter() time of each generated token (only when timing was asked)
    token_times: Optional[list[list[float]]] = None
    #: perf_counter() at the call's start (for TTFT)
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    texts: Optional[list[str]] = None


@dataclass
class PreparedBatch:
    """A batch ready for the device (tokenised, padded, moved) before any window opens."""

    prompts: list[list[int]]
    payload: Any = None
    input_tokens: int = 0
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    name: str = "backend"

    def __init__(self, config, devices) -> None:
        self.config = config
        self.devices = devices

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """Whether this backend can run in the current Python; the reason if not."""
        return True, ""

    @abstractmethod
    def version(self) -> Optional[str]: ...

    def start(self) -> None:
        """What a process pays once before any model loads: importing the framework and its model
        code, creating the CUDA context. Timed by the harness as ``startup_s``, apart from the
        load, so ``load_time_s`` compares with a script that loads a model in a warm process."""

    @abstractmethod
    def load(self) -> None:
        """Load model and tokenizer. Timed by the harness, outside every window."""

    def plan_batches(self, prompts: list[list[int]], batch: int) -> list[list[list[int]]]:
        """How one workload pass splits into ``generate`` calls: by default one call per
        ``batch`` prompts (vLLM's continuous batching hands the whole pass to one call)."""
        return [prompts[i:i + batch] for i in range(0, len(prompts), batch)]

    def describe(self) -> dict[str, Any]:
        """Backend-specific facts for ``measurement_methodology["backend"]``."""
        return {}

    @abstractmethod
    def prepare(self, prompts: list[list[int]]) -> PreparedBatch:
        """Turn one batch of token-id prompts into whatever ``generate`` consumes."""

    @abstractmethod
    def generate(self, batch: PreparedBatch, *, timing: bool = False) -> GenerationOutput:
        """Generate exactly ``output_len`` tokens per prompt. With ``timing``, record
        per-token timestamps (the harness measures that hook's cost separately)."""

    def prefill(self, batch: PreparedBatch) -> GenerationOutput:
        """A prefill-only pass (one new token) over the same batch, for the phase split."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work: called at every window edge."""

    def freeze_workers_heap(self) -> Optional[list[int]]:
        """Have the other processes that run this model beside this one (tensor-parallel
        followers) collect and freeze their heaps too, and return only when they have, so no full
        collection there stalls a measured window's collectives (llem/measure/gcfreeze.py). Returns each
        one's frozen-object count; None where there are no such processes."""
        return None

    def device_label(self) -> str:
        return "cpu"

    def memory(self) -> Optional[dict[str, Any]]:
        return None

    def flops(self, input_len: int, output_len: int, batch: int) -> Optional[dict[str, Any]]:
        return None

    def latency_batching(self) -> str:
        """How the requests of the timed latency pass were batched (goes into the latency method)."""
        return "static batching, so the requests of one batch share step timestamps"

    def close(self) -> None:
        pass


def sync_existing_cuda_context() -> None:
    """For engines whose generate call returns only after outputs reached Python (vLLM,
    TensorRT-LLM): sync a CUDA context if this process already has one, never create one —
    a context in the frontend process would take GPU memory from the engine."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception:
        pass


def count_request_outputs(outputs, start: float, end: float) -> GenerationOutput:
    """Token counts of engines that return per-request outputs (vLLM, TensorRT-LLM): each output
    has ``prompt_token_ids`` and completions with ``token_ids``."""
    in_tok = sum(len(o.prompt_token_ids or ()) for o in outputs)
    out_tok = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    return GenerationOutput(input_tokens=in_tok, output_tokens=out_tok, num_requests=len(outputs),
                            start_time=start, end_time=end)
