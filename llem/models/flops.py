"""Analytic FLOPs estimate for decoder-only generation (an estimate: never measured).

Method, per sequence, with ``L`` input tokens and ``N`` output tokens (fixed lengths):

- matmul term: ``2 x P_body`` FLOPs per token the model processes (``P_body``: weights of every
  linear layer except the LM head), over ``L`` prefill tokens and ``N - 1`` decode steps (the
  prefill forward already yields the first output token);
- LM head: ``2 x P_head`` once per forward pass (generate asks for the last position's logits only);
- attention term: ``4 x layers x heads x head_dim x context`` per token (``QK^T`` and ``AV``),
  with context ``1..L`` in prefill (causal) and ``L+1 .. L+N-1`` in decode;
- left out: embeddings lookup, norms, activations, softmax, rotary, sampling (each < 1% for
  models above ~100M parameters), padding, and sliding windows (context is taken as full).

Beam search multiplies the sequences by ``num_beams``.
"""
from __future__ import annotations

from typing import Any, Optional

METHOD = ("analytic estimate: 2 x linear-layer params per processed token (LM head once per forward) "
          "+ 4 x layers x heads x head_dim x context for attention; embeddings, norms, activations, "
          "softmax and sampling left out; full context (no sliding window)")


def attention_shape(hf_config) -> tuple[int, int, int]:
    """(layers, query heads, head_dim) of a transformers config."""
    layers = int(hf_config.num_hidden_layers)
    heads = int(hf_config.num_attention_heads)
    head_dim = getattr(hf_config, "head_dim", None) or int(hf_config.hidden_size) // heads
    return layers, heads, int(head_dim)


def generation_flops(*, body_params: int, head_params: int, layers: int, heads: int, head_dim: int,
                     input_len: int, output_len: int, sequences: int) -> dict[str, Any]:
    L, N = int(input_len), int(output_len)
    attn_per_ctx = 4 * layers * heads * head_dim
    # prefill: L tokens through the body, causal attention over 1..L, one LM-head row
    prefill = 2 * body_params * L + attn_per_ctx * L * (L + 1) // 2 + 2 * head_params
    decode_steps = max(N - 1, 0)
    # decode step j (1..N-1) attends over L + j positions
    ctx_sum = decode_steps * L + decode_steps * (decode_steps + 1) // 2
    decode = (2 * body_params + 2 * head_params) * decode_steps + attn_per_ctx * ctx_sum
    total = (prefill + decode) * sequences
    out_tokens = N * sequences
    return {
        "method": METHOD,
        "estimated": True,
        "prefill_flops": prefill * sequences,
        "decode_flops": decode * sequences,
        "total_flops": total,
        "flops_per_output_token": total / out_tokens if out_tokens else None,
        "linear_params": body_params + head_params,
        "lm_head_params": head_params,
        "sequences": sequences,
        "input_len": L,
        "output_len": N,
    }


def linear_params(model) -> tuple[int, int]:
    """(body, head) weight counts of every linear layer, from layer shapes (also right for
    quantized and tensor-parallel layers, whose storage no longer shows the logical shape)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    body = head_n = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear) or (hasattr(mod, "in_features") and hasattr(mod, "out_features")
                                                and hasattr(mod, "weight")):
            n = int(mod.in_features) * int(mod.out_features)
            if mod is head:
                head_n += n
            else:
                body += n
    return body, head_n


def model_flops(model, input_len: int, output_len: int, sequences: int) -> Optional[dict[str, Any]]:
    layers, heads, head_dim = attention_shape(model.config)
    body, head = linear_params(model)
    return generation_flops(body_params=body, head_params=head, layers=layers, heads=heads, head_dim=head_dim,
                            input_len=input_len, output_len=output_len, sequences=sequences)
