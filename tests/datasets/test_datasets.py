"""Prompt sources: synthetic, built-in, JSONL, HF (offline refusal); count, length, order."""
from __future__ import annotations

import json

import pytest

from llem.config.compose import load_config
from llem.config.schema import DatasetConfig
from llem.datasets import fit_length, load_prompts
from llem.errors import ConfigError
from llem.models.sources import load_builtin_tokenizer

TOK = load_builtin_tokenizer()


def ds(**kw) -> DatasetConfig:
    return DatasetConfig(**{"kind": "synthetic", "name": "t", **kw})


def test_synthetic_is_seeded_and_fixed_length():
    a = load_prompts(ds(num_prompts=5, input_len=12, seed=1), None, 512)
    assert a == load_prompts(ds(num_prompts=5, input_len=12, seed=1), None, 512)
    assert a != load_prompts(ds(num_prompts=5, input_len=12, seed=2), None, 512)
    assert len(a) == 5 and {len(p) for p in a} == {12} and min(min(p) for p in a) >= 3 and max(max(p) for p in a) < 512


def test_builtin_prompts_are_truncated_to_input_len():
    p = load_prompts(ds(kind="builtin", num_prompts=3, input_len=6), TOK, 10_000)
    first = TOK.encode(open("llem/datasets/builtin_prompts.txt").readline().strip(), add_special_tokens=False)
    assert p[0] == first[:6] and {len(x) for x in p} == {6}


def test_short_text_is_repeated_up_to_input_len():
    assert fit_length([1, 2, 3], 7) == [1, 2, 3, 1, 2, 3, 1]


def test_jsonl_in_file_order_and_shuffled_reproducibly(tmp_path):
    f = tmp_path / "p.jsonl"
    words = ["red", "green", "blue", "cat", "dog", "sun", "moon", "tree", "rock", "sea"]
    texts = [f"{w} is the word number {i}" for i, w in enumerate(words)]
    f.write_text("\n".join(json.dumps({"q": t}) for t in texts) + "\n")
    seq = load_prompts(ds(kind="jsonl", path=str(f), text_field="q", num_prompts=4, input_len=5), TOK, 10_000)
    assert seq == [TOK.encode(t, add_special_tokens=False)[:5] for t in texts[:4]]
    sh = [load_prompts(ds(kind="jsonl", path=str(f), text_field="q", num_prompts=4, input_len=5, order="shuffled",
                          seed=s), TOK, 10_000) for s in (3, 3, 4)]
    assert sh[0] == sh[1] and sh[0] != sh[2] and sh[0] != seq


def test_prompts_recycle_to_fill_batches():
    p = load_prompts(ds(num_prompts=3, input_len=4), None, 512, min_count=8)
    assert len(p) == 8 and p[3] == p[0] and p[7] == p[1]


def test_missing_jsonl_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.path=.*does not exist"):
        load_config(["dataset=jsonl", f"dataset.path={tmp_path / 'none.jsonl'}"])


def test_missing_field_names_the_line_and_the_fields_there(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"text": "a"}\n{"prompt": "b"}\n')
    with pytest.raises(ConfigError, match=r"dataset.text_field='text' is missing in .* line 2; allowed .*: prompt"):
        load_config(["dataset=jsonl", f"dataset.path={f}"])


def test_hf_dataset_offline_is_refused_at_validation(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"dataset.path='org/set' is a Hugging Face dataset name but offline"):
        load_config(["dataset=hf", "dataset.path=org/set"])


def test_count_and_order_overrides_reach_the_config():
    c = load_config(["dataset=builtin", "dataset.num_prompts=3", "dataset.order=shuffled", "dataset.seed=9"])
    assert (c.dataset.num_prompts, c.dataset.order, c.dataset.seed) == (3, "shuffled", 9)
