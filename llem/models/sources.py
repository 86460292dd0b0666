"""Where a model's config, weights and tokenizer come from, independent of any backend."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llem.models.architectures import load_architecture

TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "assets" / "tokenizer"


def architecture_config(model_cfg) -> dict[str, Any]:
    """The HF config dict of a builtin/no_weights model (private notes stripped)."""
    arch = load_architecture(model_cfg.architecture)
    return {k: v for k, v in arch.items() if not k.startswith("_")}


def load_builtin_tokenizer():
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER_DIR / "tokenizer.json"),
        bos_token="<s>", eos_token="</s>", pad_token="<pad>",
    )
    tok.padding_side = "left"
    return tok


def gguf_source(model_cfg) -> tuple[str, str]:
    """(folder, file name) that transformers' ``from_pretrained(folder, gguf_file=name)`` takes for
    a ``model=gguf`` config: ``model.path`` is the file, or a folder with ``model.gguf_file`` in it."""
    p = Path(model_cfg.path).expanduser()
    if model_cfg.gguf_file:
        return str(p), model_cfg.gguf_file
    return str(p.parent), p.name


def load_tokenizer(model_cfg):
    """The tokenizer, or the built-in one for builtin/no_weights models."""
    if model_cfg.tokenizer in (None, "builtin") and model_cfg.source in ("builtin", "no_weights"):
        return load_builtin_tokenizer()
    from transformers import AutoTokenizer

    if model_cfg.tokenizer == "builtin":
        return load_builtin_tokenizer()
    src = model_cfg.tokenizer or model_cfg.path
    kw: dict[str, Any] = {}
    if model_cfg.source == "gguf":
        src, kw["gguf_file"] = gguf_source(model_cfg)
    if model_cfg.source == "hub":
        from llem.models.offline import ensure_online

        ensure_online(f"model {model_cfg.path!r}")
        kw["revision"] = model_cfg.revision
    tok = AutoTokenizer.from_pretrained(src, **kw)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def write_config_dir(model_cfg, directory: str | Path) -> Path:
    """A config-only model folder (config.json + tokenizer) for engines that load from disk
    with dummy weights (vLLM ``load_format="dummy"``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = architecture_config(model_cfg)
    arch_name = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}[cfg["model_type"]]
    cfg = {"architectures": [arch_name], "torch_dtype": "float32", **cfg}
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    tok = load_builtin_tokenizer()
    tok.save_pretrained(d)
    return d
