"""TensorRT-LLM: an lm-eval ``LM`` over the ``tensorrt_llm.LLM`` llem built and measured.

UNTESTED ON REAL TensorRT-LLM (it cannot be installed on llem's development or CI machines). It is
written against llem's recorded description of the API (``llem/backends/tensorrt_api.json``,
TensorRT-LLM 1.0.0) and tested only against a test double built from that description:
- loglikelihood: ``SamplingParams(max_tokens=1, return_context_logits=True)``; each
  ``RequestOutput.context_logits`` (prompt length x vocabulary) is turned into log-probabilities
  here. The engine must be built with ``BuildConfig.gather_context_logits``, which llem sets
  whenever quality is on, so the measured engine is that same engine;
- generate_until: ``LLM.generate`` with ``end_id``/``pad_id`` from llem's tokenizer, token ids out.
"""
from __future__ import annotations

from typing import Any

from llem.quality.adapters import Adapter


def make(backend, config, batch_size: int) -> Adapter:
    from llem.backends.tensorrt import _import_api
    from llem.quality.adapters.engine_lm import EngineLM, sampling_from_gen_kwargs

    api = _import_api()
    SP = api["SamplingParams"]
    llm = backend.llm
    tok = backend.tokenizer
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos

    class LlemTensorRT(EngineLM):
        engine_name = "tensorrt_llm.LLM"

        def _prompt_logprobs(self, inputs):
            import torch

            sp = SP(max_tokens=1, return_context_logits=True, end_id=eos, pad_id=pad, detokenize=False)
            outs = llm.generate([list(t) for t in inputs], sampling_params=sp, use_tqdm=False)
            result = []
            for o, toks in zip(outs, inputs):
                logits = getattr(o, "context_logits", None)
                if logits is None:
                    raise RuntimeError("TensorRT-LLM returned no context_logits: the engine needs "
                                       "BuildConfig(gather_context_logits=True)")
                lp = torch.log_softmax(torch.as_tensor(logits).float(), dim=-1)
                target = torch.tensor(toks[1:], dtype=torch.long)
                rows = lp[: len(toks) - 1]
                chosen = rows.gather(1, target[:, None])[:, 0]
                top = rows.argmax(dim=-1) == target
                result.append([(float(c), bool(t)) for c, t in zip(chosen, top)])
            return result

        def _generate(self, inputs, *, max_tokens, stop_token_ids, sampling):
            kw: dict[str, Any] = sampling_from_gen_kwargs(sampling)
            sp = SP(max_tokens=max_tokens, end_id=eos, pad_id=pad, stop_token_ids=stop_token_ids, detokenize=False, **kw)
            outs = llm.generate([list(t) for t in inputs], sampling_params=sp, use_tqdm=False)
            return [list(o.outputs[0].token_ids) for o in outs]

    build = (getattr(backend, "llm_kwargs", {}) or {}).get("build_config") or {}
    max_len = int(build.get("max_seq_len") or 2048)
    lm = LlemTensorRT(tok, batch_size=batch_size, max_length=max_len)
    evaluated = {
        "adapter": "llem.quality.adapters.tensorrt (lm-eval LM over llem's tensorrt_llm.LLM)",
        "object": f"{type(llm).__module__}.{type(llm).__qualname__}",
        "object_id": id(llm),
        "same_object_as_measured": True,
        "tested_on_real_tensorrt_llm": False,
        "max_seq_len": max_len,
    }
    notes = ["TensorRT-LLM adapter UNTESTED on real TensorRT-LLM (written against the recorded API 1.0.0)",
             f"the engine's max_seq_len ({max_len}) is sized for the measured workload: longer evaluation prompts "
             "are cut from the left"]
    return Adapter(lm=lm, evaluated=evaluated, generated_tokens=lambda: lm.llem_generated_tokens, notes=notes)
