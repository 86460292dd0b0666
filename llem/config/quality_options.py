"""The ``quality:`` section: lm-eval on the engine that was just measured (docs/quality.md).

``kind: none`` (the default) evaluates nothing and leaves the job's ``config_hash`` exactly as it
was before quality existed. ``kind: lm_eval`` evaluates ``tasks`` with lm-eval after the measured
cycles. Every check that needs no model runs here, at validation, so bad input exits with code 2
and one line before anything runs (checks of the task names and their data live in
``llem.config.quality_tasks``).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: lm-eval keyword arguments llem sets itself: giving them in quality.gen_kwargs is an error
GEN_KWARGS_MANAGED = {"until": "the task's stop sequences", "max_gen_toks": "the task's generation length"}


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: Literal["none", "lm_eval"] = "none"
    #: task names: llem's shipped tasks (llem_easy_mc, llem_easy_gen), tasks in include_path folders,
    #: or lm-eval's own registry (arc_easy, hellaswag, ...; their data must be cached when offline)
    tasks: list[str] = []
    #: few-shot examples per question; null: the task's own setting (0 when it has none)
    num_fewshot: Optional[int] = Field(None, ge=0)
    #: samples per task (the first N); null: every sample. lm-eval's fractional limits are not accepted
    limit: Optional[int] = None
    #: requests per model call; null: the job's `batch` (the batch size that was measured)
    batch_size: Optional[int] = Field(None, ge=1)
    #: merged over the measured engine's decoding settings for generation tasks (recorded)
    gen_kwargs: dict[str, Any] = {}
    apply_chat_template: bool = False
    #: lm-eval's bootstrap for stderrs without a closed form (acc/exact_match have one); 0: no stderr
    bootstrap_iters: int = Field(1000, ge=0)
    #: extra folders of lm-eval task YAML files
    include_path: list[str] = []
    #: write every evaluated sample to <job dir>/quality_samples_<task>.jsonl
    log_samples: bool = False
    #: evaluate a model with random weights (builtin/no_weights) anyway; every number is labelled meaningless
    allow_random_weights: bool = False

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, v):
        if v is None:
            return v
        ok = isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()
        if not ok or v < 1:
            raise ValueError(f"quality.limit={v!r} is below 1 sample or not a whole number; allowed: an integer "
                             ">= 1 (samples per task) or null (every sample)")
        return int(v)

    @model_validator(mode="after")
    def _check(self) -> "QualityConfig":
        if self.kind == "none":
            return self
        if not self.tasks:
            from llem.config.quality_tasks import shipped_task_names

            raise ValueError(f"quality.tasks is empty with quality=lm_eval; allowed: one or more task names "
                             f"(shipped: {', '.join(shipped_task_names())})")
        for key in self.gen_kwargs:
            if key in GEN_KWARGS_MANAGED:
                raise ValueError(f"quality.gen_kwargs.{key} is set by {GEN_KWARGS_MANAGED[key]}; allowed: any other "
                                 "generation keyword (do_sample, temperature, top_p, ...)")
        from llem.config.quality_tasks import check_tasks

        check_tasks(self.tasks, self.include_path)
        return self

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


RANDOM_WEIGHT_SOURCES = ("builtin", "no_weights")


def cross_check(cfg) -> None:
    """Combinations of quality with the rest of the experiment that cannot give a meaningful or
    runnable evaluation (ValueError -> ConfigError, exit 2)."""
    q = cfg.quality
    if not q.enabled:
        return
    if cfg.model.source in RANDOM_WEIGHT_SOURCES and not q.allow_random_weights:
        raise ValueError(f"quality=lm_eval on model.source={cfg.model.source} ({cfg.model.name}): random weights score "
                         "at chance, so its accuracy says nothing; allowed: a model with trained weights (model=gguf, "
                         "local, hub), or quality.allow_random_weights=true (every quality number is then labelled "
                         "meaningless)")
    if cfg.backend == "pytorch" and cfg.pytorch is not None and cfg.pytorch.tp_plan:
        raise ValueError("quality=lm_eval with pytorch.tp_plan=auto is not supported (the tensor-parallel followers "
                         "mirror only llem's own generate calls); allowed: a single-process model (no tp_plan)")
    if cfg.backend == "vllm" and cfg.vllm is not None and (cfg.vllm.n or 1) > 1:
        raise ValueError(f"quality=lm_eval with vllm.n={cfg.vllm.n}: an evaluation scores one completion per "
                         "question; allowed: vllm.n=1 or null")
    if getattr(cfg.runner, cfg.backend) == "local":
        import importlib.util

        # the job runs in this Python: a missing lm-eval is known now, before any directory exists
        if importlib.util.find_spec("lm_eval") is None:
            raise ValueError("quality=lm_eval needs lm-eval in this Python (pip install 'llenergymeasure[quality]'); "
                             "allowed without it: quality=none")
