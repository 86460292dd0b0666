"""Prompt sources: synthetic token ids, built-in prompts, local JSONL, Hugging Face datasets.

Every source ends as token-id prompts of exactly ``input_len`` tokens: longer texts are
truncated, shorter ones repeated, so the prefill work per prompt is fixed and comparable
across backends and runs. Problems with the input are reported at config validation (a missing
file or field), before any model loads.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional

from llem.errors import ConfigError

BUILTIN_PROMPTS = Path(__file__).with_name("builtin_prompts.txt")
# ids below this are the built-in tokenizer's specials (<pad>, <s>, </s>): synthetic prompts avoid them
_FIRST_ORDINARY_ID = 3


def jsonl_rows(path: Path, what: str):
    """Yield ``(line number, parsed row)`` of a JSONL file, skipping blank lines; a line that is
    not JSON raises ValueError naming ``what`` (e.g. "dataset.path='x.jsonl'") and the line."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{what} line {n} is not JSON ({err.msg})") from None


def check_jsonl(path: str, text_field: str) -> None:
    """Raise ValueError naming the line when the file is missing, unreadable or lacks the field."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"dataset.path={path!r} does not exist or is not a file")
    rows = 0
    for n, row in jsonl_rows(p, f"dataset.path={path!r}"):
        if not isinstance(row, dict) or text_field not in row:
            keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
            raise ValueError(f"dataset.text_field={text_field!r} is missing in {path} line {n}; "
                             f"allowed (fields of that line): {keys}")
        rows += 1
    if rows == 0:
        raise ValueError(f"dataset.path={path!r} holds no prompts")


def load_texts(cfg) -> Optional[list[str]]:
    """The dataset's texts (``None`` for synthetic prompts, which need none). The harness reads
    them before the idle baseline and the model load, so a missing or unreachable dataset fails
    the job in seconds instead of after a model load."""
    if cfg.kind == "synthetic":
        return None
    if cfg.kind == "builtin":
        return [line for line in BUILTIN_PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    if cfg.kind == "jsonl":
        with open(Path(cfg.path).expanduser(), encoding="utf-8") as f:
            return [str(json.loads(line)[cfg.text_field]) for line in f if line.strip()]
    if cfg.kind == "hf":
        from llem.models.offline import ensure_online

        if not Path(cfg.path).expanduser().exists():
            ensure_online(f"dataset {cfg.path!r}")
        try:
            import datasets  # type: ignore
        except ImportError:
            raise ConfigError("dataset.kind=hf needs the `datasets` package (pip install 'llenergymeasure[hf]'); "
                              "allowed without it: synthetic, builtin, jsonl") from None
        split = cfg.split or "train"
        try:
            ds = datasets.load_dataset(cfg.path, cfg.subset, split=split)
        except datasets.exceptions.DatasetNotFoundError as err:
            raise ConfigError(f"dataset.path={cfg.path!r}: no such dataset, or no access to it ({err})") from None
        except ValueError as err:
            if "split" not in str(err).lower():
                raise
            # datasets names the splits that exist in this message
            raise ConfigError(f"dataset.split={split!r} is not a split of {cfg.path} ({err})") from None
        if cfg.text_field not in ds.column_names:
            raise ConfigError(f"dataset.text_field={cfg.text_field!r} is not a column of {cfg.path}; "
                              f"allowed: {', '.join(ds.column_names)}")
        # only as many rows as needed are read: a sequential run never touches the rest
        limit = cfg.num_prompts if cfg.order == "sequential" else len(ds)
        return [str(ds[i][cfg.text_field]) for i in range(min(limit, len(ds)))]
    raise ConfigError(f"dataset.kind={cfg.kind!r} is not allowed; allowed: synthetic, builtin, jsonl, hf")


def fit_length(ids: list[int], input_len: int) -> list[int]:
    """Exactly ``input_len`` ids: truncate, or repeat the text until long enough."""
    if not ids:
        raise ConfigError("a prompt tokenised to zero tokens; remove empty prompts from the dataset")
    out = list(ids)
    while len(out) < input_len:
        out.extend(ids)
    return out[:input_len]


def load_prompts(cfg, tokenizer, vocab_size: int, *, min_count: int = 1,
                 texts: Optional[list[str]] = None) -> list[list[int]]:
    """``num_prompts`` token-id prompts of ``input_len`` tokens, in the configured order, then
    recycled in that order up to ``min_count`` so every batch is full. ``texts``: what
    ``load_texts`` already read (read here otherwise)."""
    n = max(cfg.num_prompts, min_count)
    if cfg.kind == "synthetic":
        rng = random.Random(cfg.seed)
        base = [[rng.randrange(_FIRST_ORDINARY_ID, vocab_size) for _ in range(cfg.input_len)]
                for _ in range(cfg.num_prompts)]
    else:
        texts = list(texts) if texts is not None else load_texts(cfg)
        if not texts:
            raise ConfigError(f"dataset {cfg.name!r} has no prompts")
        if cfg.order == "shuffled":
            random.Random(cfg.seed).shuffle(texts)
        texts = texts[: cfg.num_prompts]
        if tokenizer is None:
            raise ConfigError(f"dataset.kind={cfg.kind} needs a tokenizer; this backend has none; allowed: synthetic")
        # ids modulo vocab: the built-in tokenizer may know more ids than a tiny model's vocabulary
        base = [[i % vocab_size for i in fit_length(tokenizer.encode(t, add_special_tokens=False), cfg.input_len)]
                for t in texts]
    if cfg.order == "shuffled" and cfg.kind == "synthetic":
        random.Random(cfg.seed).shuffle(base)
    return [base[i % len(base)] for i in range(n)]
