"""Shipped architecture configs (public facts: layer counts, sizes, heads, vocabulary).

A ``no_weights`` model is built from one of these with random weights: the same compute and
memory traffic as the real model, with no download.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

_DIR = Path(__file__).parent


@lru_cache(maxsize=None)
def available_architectures() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in _DIR.glob("*.json")))


def load_architecture(name: str) -> dict:
    """The shipped architecture's config (a fresh dict each call: callers may change it)."""
    return json.loads(_architecture_text(name))


@lru_cache(maxsize=None)
def _architecture_text(name: str) -> str:
    # read once per process: a 10,000-job dry run estimates every job from a handful of files
    path = _DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"architecture {name!r} is not shipped; allowed: {', '.join(available_architectures())}")
    return path.read_text()
