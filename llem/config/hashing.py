"""config_hash: SHA-256 of the semantic resolved config.

Canonical JSON (sorted keys, no whitespace) of ``ExperimentConfig.semantic_dict()``: output
paths, launcher settings and runner placement are not part of it; anything that changes
the measurement is.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


# one encoder: json.dumps with these options would build a new one per call, which dominates
# the cost of hashing a 10,000-job grid field by field
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def canonical_json(data: Any) -> str:
    return _CANONICAL.encode(data)


def sha256_of(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def config_hash(config) -> str:
    return sha256_of(config.semantic_dict())


def sha256_of_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
