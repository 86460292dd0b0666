"""PyTorch: lm-eval's ``HFLM`` over the model object and tokenizer llem loaded and measured.

HFLM accepts an already-loaded ``PreTrainedModel`` and then leaves its device, dtype, quantisation
and attention kernel alone: the evaluation runs on exactly the weights the measured cycles ran on
(a GGUF file's dequantised weights, torchao/bitsandbytes int8/int4 layers, a compiled forward).
The one subclass hook counts generated tokens from tensor shapes, as llem counts them elsewhere.
"""
from __future__ import annotations

from llem.quality.adapters import Adapter


def make(backend, config, batch_size: int) -> Adapter:
    from lm_eval.models.huggingface import HFLM

    class LlemHFLM(HFLM):
        """HFLM counting generated tokens: every row of a batch keeps generating until the last
        row stops, so the count is rows x new positions (the work done, not the answer length)."""

        llem_generated_tokens = 0

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            out = super()._model_generate(context, max_length, stop, **generation_kwargs)
            self.llem_generated_tokens += int(out.shape[0]) * int(out.shape[1] - context.shape[1])
            return out

    model, tok = backend.model, backend.tokenizer
    lm = LlemHFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    try:
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    except (StopIteration, AttributeError):
        dtype = None
    evaluated = {
        "adapter": "lm_eval.models.huggingface.HFLM over the loaded model object (pretrained=<model>, tokenizer=<tokenizer>)",
        "object": f"{type(model).__module__}.{type(model).__qualname__}",
        "object_id": id(model),
        "same_object_as_measured": lm.model is backend.model,
        "device": str(getattr(model, "device", "")),
        "dtype": dtype,
        "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation", None),
        "quantization": getattr(backend, "quantization", None),
        "tokenizer": f"{type(tok).__module__}.{type(tok).__qualname__}",
    }
    notes = []
    if getattr(config.pytorch, "torch_compile", False):
        notes.append("the model's forward was compiled for the measurement; lm-eval's loglikelihood batches have "
                     "other shapes, so the evaluation may recompile (outside the measured cycles)")
    return Adapter(lm=lm, evaluated=evaluated, generated_tokens=lambda: lm.llem_generated_tokens, notes=notes)
