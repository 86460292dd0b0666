"""PyTorch / transformers backend: ``model.generate`` with a fixed output length."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from llem.backends.base import Backend, GenerationOutput, PreparedBatch

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class _TimingStreamer:
    """Records a perf_counter() timestamp each time generate hands over new tokens.

    transformers calls ``put`` with ``next_tokens.cpu()``, i.e. after the device produced the
    step, so the timestamp marks when the token existed on the host. The first ``put`` carries
    the prompt and is skipped.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self._seen_prompt = False

    def put(self, value) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


class PyTorchBackend(Backend):
    name = "pytorch"

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

    # --- loading --------------------------------------------------------------------------
    def _device(self) -> str:
        import torch

        dev = self.config.device
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
        return torch.float16  # int8/int4 weights compute in fp16

    def quantization_config(self):
        prec = self.config.precision
        if prec not in ("int8", "int4"):
            return None
        import torch

        if not torch.cuda.is_available():
            from llem.errors import ConfigError

            raise ConfigError(f"precision={prec} needs a CUDA GPU with bitsandbytes; allowed here: fp32, fp16, bf16")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            from llem.errors import ConfigError

            raise ConfigError(f"precision={prec} needs bitsandbytes (`pip install bitsandbytes`); allowed here: fp32, fp16, bf16") from None
        from transformers import BitsAndBytesConfig

        if prec == "int8":
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained``/``from_config`` from the typed section."""
        pt = self.config.pytorch
        kw: dict[str, Any] = {"dtype": self._torch_dtype()}
        if pt.attn_implementation is not None:
            kw["attn_implementation"] = pt.attn_implementation
        if pt.device_map is not None:
            kw["device_map"] = pt.device_map
        if pt.max_memory is not None:
            kw["max_memory"] = pt.max_memory
        kw["low_cpu_mem_usage"] = pt.low_cpu_mem_usage
        kw["trust_remote_code"] = pt.trust_remote_code
        q = self.quantization_config()
        if q is not None:
            kw["quantization_config"] = q
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
        }
        if pt.do_sample:
            kw["temperature"] = pt.temperature
        for k in ("top_k", "top_p", "min_p", "repetition_penalty", "cache_implementation"):
            v = getattr(pt, k)
            if v is not None:
                kw[k] = v
        kw.update(pt.extra_generate_kwargs)
        return kw

    def load(self) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from llem.models.sources import architecture_config, load_tokenizer

        mc = self.config.model
        self.device = self._device()
        torch.manual_seed(self.config.seed)
        self.tokenizer = load_tokenizer(mc)
        kw = self.load_kwargs()
        if mc.source in ("builtin", "no_weights"):
            hf_cfg = AutoConfig.for_model(**architecture_config(mc))
            if kw.get("attn_implementation"):
                hf_cfg._attn_implementation = kw["attn_implementation"]
            # Random init directly on the target device: an 8B model never touches host RAM.
            with torch.device(self.device if kw.get("device_map") is None else "cpu"):
                model = AutoModelForCausalLM.from_config(hf_cfg, dtype=kw["dtype"],
                                                         trust_remote_code=kw.get("trust_remote_code", False))
        else:
            src: Any = mc.path
            if mc.source == "gguf":
                p = Path(mc.path)
                if mc.gguf_file:
                    kw["gguf_file"] = mc.gguf_file
                else:
                    src, kw["gguf_file"] = str(p.parent), p.name
            if mc.source == "hub":
                from llem.models.offline import ensure_online

                ensure_online(f"model {mc.path!r}")
                kw["revision"] = mc.revision
            model = AutoModelForCausalLM.from_pretrained(src, **kw)
        if self.config.pytorch.device_map is None and self.config.precision not in ("int8", "int4"):
            model = model.to(self.device)
        model.eval()
        if self.config.pytorch.torch_compile:
            mode = self.config.pytorch.torch_compile_mode
            model.forward = torch.compile(model.forward, mode=mode) if mode else torch.compile(model.forward)
        self.model = model
        self.vocab_size = int(model.config.vocab_size)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # --- generation -----------------------------------------------------------------------
    def prepare(self, prompts: list[list[int]]) -> PreparedBatch:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding, as decoder-only generation needs
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        dev = self.model.device if hasattr(self.model, "device") else self.device
        payload = {"input_ids": ids.to(dev), "attention_mask": mask.to(dev)}
        return PreparedBatch(prompts=prompts, payload=payload, input_tokens=sum(len(p) for p in prompts))

    def _generate(self, batch: PreparedBatch, kwargs: dict[str, Any], timing: bool) -> GenerationOutput:
        import torch

        streamer = _TimingStreamer() if timing else None
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**batch.payload, **kwargs, pad_token_id=self.pad_id,
                                      **({"streamer": streamer} if streamer else {}))
        end = time.perf_counter()
        n_in = batch.payload["input_ids"].shape[1]
        new = int(out.shape[1] - n_in)
        rows = int(out.shape[0])
        return GenerationOutput(
            input_tokens=batch.input_tokens, output_tokens=new * rows, num_requests=rows,
            token_times=[list(streamer.times) for _ in range(rows)] if streamer else None,
            start_time=start, end_time=end,
        )

    def generate(self, batch: PreparedBatch, *, timing: bool = False) -> GenerationOutput:
        return self._generate(batch, self.generate_kwargs(), timing)

    def prefill(self, batch: PreparedBatch) -> GenerationOutput:
        kw = dict(self.generate_kwargs(), max_new_tokens=1, min_new_tokens=1)
        return self._generate(batch, kw, False)

    def decode_text(self, ids) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def synchronize(self) -> None:
        import torch

        if torch.cuda.is_available() and str(self.device).startswith("cuda"):
            torch.cuda.synchronize()

    def device_label(self) -> str:
        return str(self.device)

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass
