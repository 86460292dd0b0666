"""Offline mode: llem never touches the network unless the user allows it.

Offline is on when any of HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, HF_DATASETS_OFFLINE or
LLEM_OFFLINE is truthy. The check happens at config validation, before any model code runs,
so an offline run with a hub id fails in one line instead of waiting on a socket.
"""
from __future__ import annotations

import os

from llem.errors import ConfigError

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "LLEM_OFFLINE")
_TRUTHY = ("1", "true", "yes", "on")


def _set_vars() -> list[str]:
    return [v for v in OFFLINE_VARS if os.environ.get(v, "").strip().lower() in _TRUTHY]


def is_offline() -> bool:
    return bool(_set_vars())


def offline_reason() -> str:
    return ", ".join(f"{v}={os.environ[v]}" for v in _set_vars()) or "online"


def ensure_online(what: str) -> None:
    if is_offline():
        raise ConfigError(f"{what} needs the Hugging Face hub, but offline mode is on ({offline_reason()}); "
                          "use a local path or unset it")
