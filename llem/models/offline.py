"""Offline mode: llem never touches the network unless the user allows it."""
from __future__ import annotations

import os

from llem.errors import ConfigError


def is_offline() -> bool:
    truthy = ("1", "true", "yes", "on")
    return any(os.environ.get(v, "").lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LLEM_OFFLINE"))


def ensure_online(what: str) -> None:
    if is_offline():
        raise ConfigError(f"{what} needs the Hugging Face hub, but offline mode is on "
                          "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE/LLEM_OFFLINE); use a local path or unset it")
