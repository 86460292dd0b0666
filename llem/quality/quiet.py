"""Keep lm-eval's progress bars and chatter out of the job's output (llem prints its own progress).

The environment variables are read when lm-eval's modules load and when it evaluates. Its progress
bars cannot all be switched off that way: by the time quality runs, ``tqdm`` was imported long
before (by transformers) and read ``TQDM_DISABLE`` then, and lm-eval's model classes pass
``disable=`` themselves. ``silenced()`` therefore swaps the ``tqdm`` name inside the lm-eval modules
that use one for a disabled bar, and two of lm-eval's add-ons to its results for nothing: ``git
describe`` of the working directory, and torch's ``collect_env`` report (which runs nvidia-smi, pip
and git in subprocesses, takes seconds per task and prints "fatal: not a git repository" outside a
checkout). llem keeps neither; it records its own environment snapshot. Everything is put back.
"""
from __future__ import annotations

import contextlib
import functools
import sys

from llem.config.quality_tasks import quiet_lm_eval

__all__ = ["quiet_lm_eval", "silenced"]

_TQDM_MODULES = ("lm_eval.api.task", "lm_eval.api.model", "lm_eval.models.huggingface")


@contextlib.contextmanager
def silenced():
    import importlib

    from tqdm import tqdm

    # lm_eval loads these lazily; the model modules are patched only when already in use (importing
    # lm_eval.models.huggingface needs accelerate, which the vLLM venv does not have)
    for name in ("lm_eval.evaluator", "lm_eval.api.task", "lm_eval.api.model"):
        importlib.import_module(name)
    quiet = functools.partial(tqdm, disable=True)
    saved = []
    for name in _TQDM_MODULES:
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "tqdm", None) is tqdm:
            saved.append((mod, "tqdm", mod.tqdm))
            mod.tqdm = quiet
    ev = sys.modules.get("lm_eval.evaluator")
    if ev is not None:
        for attr, stub in (("get_git_commit_hash", lambda: None), ("add_env_info", lambda storage: None)):
            if hasattr(ev, attr):
                saved.append((ev, attr, getattr(ev, attr)))
                setattr(ev, attr, stub)
    try:
        yield
    finally:
        for mod, attr, value in reversed(saved):
            setattr(mod, attr, value)
