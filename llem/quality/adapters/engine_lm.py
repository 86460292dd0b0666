"""An lm-eval ``LM`` for engines that take token ids (vLLM, TensorRT-LLM), over an engine already built.

llem builds these engines without a tokenizer (``skip_tokenizer_init``: prompts go in as token
ids, outputs come back as token ids), and keeps it that way for the evaluation, so the engine
evaluated is the engine measured. Text is tokenised and detokenised here with llem's tokenizer.

A subclass supplies two engine calls:
- ``_prompt_logprobs(inputs)``: for each token list, the log-probability of every token after the
  first given the ones before it, and whether it was the engine's top choice (loglikelihood);
- ``_generate(inputs, max_tokens, stop_token_ids, sampling)``: generated token ids per input.

Stop strings: an engine without a tokenizer cannot match text, so generation stops at EOS and at
stop strings that are one token long; longer stop strings are applied to the decoded text after
generation (the engine may generate up to ``max_gen_toks`` tokens past them, which the energy
includes and the token count says).
"""
from __future__ import annotations

from typing import Any, Optional

from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import Collator
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

DEFAULT_MAX_GEN_TOKS = 256


class EngineLM(TemplateLM):
    #: what the adapter calls the engine in messages
    engine_name = "engine"

    def __init__(self, tokenizer, *, batch_size: int, max_length: int) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self._max_length = int(max_length)
        self.llem_generated_tokens = 0
        #: per generation call: requests, tokens generated, requests cut after generation by a stop string
        self.llem_stop_strings_applied_after = 0

    # --- tokenisation (the way lm-eval's HFLM does it, so both backends score the same tokens) ---------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "llem")).replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: Optional[bool] = None, **kwargs) -> list[int]:
        if not string:
            return []
        kw: dict[str, Any] = {}
        if add_special_tokens is not None:
            kw["add_special_tokens"] = add_special_tokens
        else:
            bos = getattr(self.tokenizer, "bos_token", None)
            if bos and string.startswith(bos):
                kw["add_special_tokens"] = False
        return list(self.tokenizer.encode(string, **kw))

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt)

    def chat_template(self, chat_template: bool | str = False) -> Optional[str]:
        if chat_template is False or chat_template is None:
            return None
        return getattr(self.tokenizer, "chat_template", None)

    # --- the engine calls a subclass supplies ----------------------------------------------------
    def _prompt_logprobs(self, inputs: list[list[int]]) -> list[list[tuple[float, bool]]]:
        raise NotImplementedError

    def _generate(self, inputs: list[list[int]], *, max_tokens: int, stop_token_ids: list[int],
                  sampling: dict[str, Any]) -> list[list[int]]:
        raise NotImplementedError

    # --- lm-eval's request types ------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        max_ctx = self.max_length - 1  # the engines generate at least one token after the prompt
        res = []

        def by_length(x):
            toks = x[1] + x[2]
            return -len(toks), tuple(toks)

        order = Collator(requests, sort_fn=by_length)
        for chunk in order.get_batched(n=self.batch_size, batch_fn=None):
            inputs, ctxlens = [], []
            for _, ctx, cont in chunk:
                inp = (ctx + cont)[-max_ctx:]
                inputs.append(inp)
                ctxlens.append(len(ctx) - max(0, len(ctx) + len(cont) - max_ctx))
            per_token = self._prompt_logprobs(inputs)
            for (key, _, _), inp, ctxlen, lps in zip(chunk, inputs, ctxlens, per_token):
                # lps[i] scores inp[i + 1]: the continuation is inp[ctxlen:], i.e. lps[ctxlen - 1:]
                scored = lps[max(ctxlen, 1) - 1:]
                answer = (float(sum(lp for lp, _ in scored)), all(top for _, top in scored))
                res.append(answer)
                if key is not None:
                    self.cache_hook.add_partial("loglikelihood", key, answer)
        return order.get_original(res)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for (string,) in (r.args for r in requests):
            windows = [(None,) + make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length - 2, context_len=1)]
            total = sum(ll for ll, _ in self._loglikelihood_tokens(windows))
            out.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        reqs = [(ctx, self.tok_encode(ctx), kw) for ctx, kw in (r.args for r in requests)]
        order = Collator(reqs, sort_fn=lambda x: (-len(x[1]), x[0]), group_by="gen_kwargs",
                         group_fn=lambda x: x[2])
        res = []
        eos_text = self.tokenizer.decode([self.eot_token_id]) if self.eot_token_id is not None else None
        for chunk in order.get_batched(n=self.batch_size, batch_fn=None):
            kwargs = dict(chunk[0][2])
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            if eos_text and eos_text not in until:
                until.append(eos_text)
            max_gen = int(kwargs.pop("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
            stop_ids = [self.eot_token_id] if self.eot_token_id is not None else []
            for s in until:
                ids = self.tokenizer.encode(s, add_special_tokens=False)
                if len(ids) == 1 and ids[0] not in stop_ids:
                    stop_ids.append(ids[0])
            room = max(1, self.max_length - max_gen)
            inputs = [toks[-room:] for _, toks, _ in chunk]
            outs = self._generate(inputs, max_tokens=max_gen, stop_token_ids=stop_ids, sampling=kwargs)
            for (ctx, _, kw), ids in zip(chunk, outs):
                self.llem_generated_tokens += len(ids)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                cut = _cut(text, until)
                self.llem_stop_strings_applied_after += cut != text
                res.append(cut)
                self.cache_hook.add_partial("generate_until", (ctx, kw), cut)
        return order.get_original(res)


def _cut(text: str, until: list[str]) -> str:
    for s in until:
        if s:
            text = text.split(s)[0]
    return text


def sampling_from_gen_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """lm-eval generation keywords (HF names) -> engine sampling keywords: greedy unless do_sample."""
    kw = dict(kwargs)
    do_sample = bool(kw.pop("do_sample", False))
    if not do_sample:
        kw["temperature"] = 0.0
        for k in ("top_p", "top_k", "min_p"):
            kw.pop(k, None)
    elif "temperature" not in kw:
        kw["temperature"] = 1.0
    return kw
