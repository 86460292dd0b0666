"""Prompt sources: synthetic token ids, built-in prompts, local JSONL, HF datasets."""
from __future__ import annotations

import json
import random
from pathlib import Path

BUILTIN_PROMPTS = Path(__file__).with_name("builtin_prompts.txt")


def _texts(cfg) -> list[str]:
    if cfg.kind == "builtin":
        return [l for l in BUILTIN_PROMPTS.read_text().splitlines() if l.strip()]
    if cfg.kind == "jsonl":
        out = []
        with open(Path(cfg.path).expanduser()) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if cfg.text_field not in row:
                    raise ValueError(f"dataset.text_field={cfg.text_field!r} missing in {cfg.path} line {n}")
                out.append(str(row[cfg.text_field]))
        return out
    if cfg.kind == "hf":
        from llem.models.offline import ensure_online

        ensure_online(f"dataset {cfg.path!r}")
        import datasets  # type: ignore

        ds = datasets.load_dataset(cfg.path, split=cfg.split)
        return [str(r[cfg.text_field]) for r in ds]
    raise ValueError(cfg.kind)


def load_prompts(cfg, tokenizer, vocab_size: int, *, min_count: int = 1) -> list[list[int]]:
    """Token-id prompts of exactly ``input_len`` tokens, ``num_prompts`` of them (at least
    ``min_count``, recycling in order so every batch is full)."""
    n = max(cfg.num_prompts, min_count)
    if cfg.kind == "synthetic":
        rng = random.Random(cfg.seed)
        # ids 3.. avoid the special tokens of the built-in tokenizer (pad/bos/eos)
        base = [[rng.randrange(3, vocab_size) for _ in range(cfg.input_len)] for _ in range(cfg.num_prompts)]
    else:
        texts = _texts(cfg)
        if not texts:
            raise ValueError(f"dataset {cfg.name!r} has no prompts")
        base = []
        for t in texts[: cfg.num_prompts] if cfg.order == "sequential" else texts:
            ids = tokenizer.encode(t, add_special_tokens=False)
            while len(ids) < cfg.input_len:  # pad by repeating the text: fixed input length
                ids = ids + ids
            base.append([i % vocab_size for i in ids[: cfg.input_len]])
    if cfg.order == "shuffled":
        random.Random(cfg.seed).shuffle(base)
        base = base[: cfg.num_prompts]
    return [base[i % len(base)] for i in range(n)]
