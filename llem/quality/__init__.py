"""Quality x efficiency: lm-eval on the very backend object that was measured (docs/quality.md).

- ``llem.config.quality_options``: the ``quality:`` section and its checks against the rest of the experiment;
- ``llem.config.quality_tasks``: task names -> task files (shipped under ``tasks/`` here, ``include_path``,
  lm-eval's registry);
- ``adapters``: an lm-eval ``LM`` over each backend's loaded engine (no second load);
- ``metering``: meter windows around the evaluation's model calls;
- ``stats``: ``quality_per_joule`` and its interval;
- ``runner``: ``run_quality``, the one call the harness makes after the measured cycles.
"""
from __future__ import annotations

from llem.config.quality_options import QualityConfig

__all__ = ["QualityConfig", "run_quality"]


def run_quality(*args, **kwargs):
    from llem.quality.runner import run_quality as _run

    return _run(*args, **kwargs)
