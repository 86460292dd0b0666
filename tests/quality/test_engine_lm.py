"""The token-id LM that the vLLM and TensorRT-LLM adapters share (llem/quality/adapters/engine_lm.py),
against lm-eval's own HFLM on the same model: both must score the same tokens the same way.

The engine here is a TEST DOUBLE: its two calls are computed with the tiny transformers model, so
any difference from HFLM is the shared LM's bookkeeping (tokenisation, context/continuation split,
truncation, stop strings), which is what this test is for. Real vLLM runs in test_vllm_quality.py."""
from __future__ import annotations

import pytest
import torch

from llem.backends.pytorch import PyTorchBackend
from llem.config.compose import load_config
from llem.devices import DeviceSet


@pytest.fixture(scope="module")
def tiny():
    cfg = load_config(["quality=lm_eval", "quality.allow_random_weights=true", "device=cpu"])
    be = PyTorchBackend(cfg, DeviceSet(unavailable_reason="cpu"))
    be.load()
    return be


def double_engine_lm(be, batch_size=2, max_length=2048):
    from llem.quality.adapters.engine_lm import EngineLM

    model = be.model

    class HFDoubleEngineLM(EngineLM):
        engine_name = "transformers double"
        calls: list = []

        def _prompt_logprobs(self, inputs):
            out = []
            for toks in inputs:
                with torch.inference_mode():
                    lp = torch.log_softmax(model(torch.tensor([toks])).logits[0].float(), dim=-1)
                rows = lp[:-1]
                target = torch.tensor(toks[1:])
                chosen = rows.gather(1, target[:, None])[:, 0]
                out.append([(float(c), bool(t)) for c, t in zip(chosen, rows.argmax(-1) == target)])
            return out

        def _generate(self, inputs, *, max_tokens, stop_token_ids, sampling):
            self.calls.append({"max_tokens": max_tokens, "stop_token_ids": stop_token_ids, "sampling": sampling})
            res = []
            for toks in inputs:
                with torch.inference_mode():
                    g = model.generate(torch.tensor([toks]), max_new_tokens=max_tokens, do_sample=False,
                                       eos_token_id=stop_token_ids, pad_token_id=be.pad_id)
                res.append(g[0, len(toks):].tolist())
            return res

    return HFDoubleEngineLM(be.tokenizer, batch_size=batch_size, max_length=max_length)


def _instances(kind, args):
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def test_loglikelihood_matches_hflm_on_the_same_model(tiny):
    from lm_eval.models.huggingface import HFLM

    hf = HFLM(pretrained=tiny.model, tokenizer=tiny.tokenizer, batch_size=2)
    eng = double_engine_lm(tiny)
    args = [("Question: What is the capital of France?\nAnswer:", " Paris"),
            ("Question: What is the capital of France?\nAnswer:", " Berlin is big"),
            ("The sky is", " blue"), ("A longer context that goes on for a while and then", " stops."),
            ("trailing space ", "x")]
    a = hf.loglikelihood(_instances("loglikelihood", args), disable_tqdm=True)
    b = eng.loglikelihood(_instances("loglikelihood", args), disable_tqdm=True)
    for (la, ga), (lb, gb) in zip(a, b):
        assert lb == pytest.approx(la, abs=1e-4) and ga == gb
    assert len({round(x, 3) for x, _ in b}) == len(b)  # distinct requests, distinct scores


def test_long_context_is_cut_from_the_left_like_lm_evals_engines(tiny):
    eng = double_engine_lm(tiny, max_length=16)
    full = double_engine_lm(tiny)
    ctx = " ".join(f"w{i}" for i in range(60))
    (short, _), = eng.loglikelihood(_instances("loglikelihood", [(ctx, " end")]), disable_tqdm=True)
    (long, _), = full.loglikelihood(_instances("loglikelihood", [(ctx, " end")]), disable_tqdm=True)
    assert short != pytest.approx(long)  # the cut context scores differently, and it ran at all


def test_generate_until_matches_hflm_greedy_text(tiny):
    from lm_eval.models.huggingface import HFLM

    hf = HFLM(pretrained=tiny.model, tokenizer=tiny.tokenizer, batch_size=1)
    eng = double_engine_lm(tiny, batch_size=1)
    kw = {"until": ["\n", "."], "max_gen_toks": 12, "do_sample": False}
    args = [("Question: What colour is snow?\nAnswer:", dict(kw)), ("Once upon a time", dict(kw))]
    a = hf.generate_until(_instances("generate_until", args), disable_tqdm=True)
    b = eng.generate_until(_instances("generate_until", args), disable_tqdm=True)
    assert b == a and any(t.strip() for t in b), (a, b)
    assert all("\n" not in t and "." not in t for t in b)
    # single-token stop strings become stop token ids; greedy unless do_sample
    call = eng.calls[-1]
    nl = tiny.tokenizer.encode("\n", add_special_tokens=False)
    assert call["max_tokens"] == 12 and tiny.tokenizer.eos_token_id in call["stop_token_ids"]
    if len(nl) == 1:
        assert nl[0] in call["stop_token_ids"]
    assert eng.llem_generated_tokens > 0


def test_sampling_keywords_map_to_engine_names():
    from llem.quality.adapters.engine_lm import sampling_from_gen_kwargs

    assert sampling_from_gen_kwargs({"do_sample": False, "temperature": 0.7, "top_p": 0.9}) == {"temperature": 0.0}
    assert sampling_from_gen_kwargs({"do_sample": True, "top_p": 0.9}) == {"top_p": 0.9, "temperature": 1.0}
    assert sampling_from_gen_kwargs({"do_sample": True, "temperature": 0.5}) == {"temperature": 0.5}


def test_decoding_settings_follow_the_measured_engine():
    from llem.quality.adapters import decoding_settings

    kw, _ = decoding_settings(load_config(["pytorch.do_sample=true", "pytorch.temperature=0.7", "pytorch.top_k=5"]))
    assert kw == {"do_sample": True, "temperature": 0.7, "top_k": 5}
    kw, notes = decoding_settings(load_config(["pytorch.use_cache=false"]))
    assert kw == {"do_sample": False} and "use_cache" in notes[0]
    kw, _ = decoding_settings(load_config(["backend=vllm", "vllm.temperature=0.0", "vllm.top_p=0.5"]))
    assert kw == {"temperature": 0.0, "top_p": 0.5, "do_sample": False}
