"""``run_study(StudyConfig(...))``: the library path to what ``llem run -m`` does."""
from __future__ import annotations

import json
from typing import Any

from llem.config.schema import StudyConfig


def _value(v: Any) -> str:
    """A Python value in Hydra's override grammar."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        import re

        if re.fullmatch(r"[A-Za-z0-9_./\-:@]+", v) and v not in ("null", "true", "false"):
            return v
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)


def _flatten(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _flatten(v, key + ".")
        else:
            out.append(f"{key}={_value(v)}")
    return out


def study_args(study: StudyConfig) -> list[str]:
    """The ``llem run`` arguments equivalent to a StudyConfig."""
    args = ["-m"]
    if study.launcher:
        args.append(f"hydra/launcher={study.launcher}")
    # config-group choices first: Hydra applies them before the values inside them
    args += _flatten(study.base)
    for key, values in study.sweep.items():
        if not values:
            from llem.errors import ConfigError

            raise ConfigError(f"sweep.{key}=[] is empty; give at least one value")
        args.append(f"{key}=" + ",".join(_value(v) for v in values))
    args += list(study.overrides)
    args += [f"hydra.sweeper.grid_cycles={study.cycles}", f"hydra.sweeper.order={study.order}",
             f"hydra.sweeper.shuffle_seed={study.shuffle_seed}", f"hydra.sweeper.cooldown_s={study.cooldown_s}",
             f"hydra.sweeper.study_name={_value(study.name)}"]
    if study.parallel_gpus:
        args.append("hydra.launcher.parallel_gpus=true")
    if study.output_dir:
        args.append(f"hydra.sweep.dir={_value(str(study.output_dir))}")
    return args


def run_study(study: StudyConfig, *, quiet: bool = True, live=None):
    from llem.cli.run import split_args
    from llem.cli.study import study_command
    from llem.study import engine

    args = study_args(study) + (["--quiet"] if quiet else []) + (["--live", str(live)] if live else [])
    before = engine.LAST
    study_command(args, split_args(args))
    result = engine.LAST
    if result is None or result is before:
        raise RuntimeError("the study did not run")
    return result


def resume_study(study_dir, *, quiet: bool = True):
    """``llem run --resume <study_dir>`` as a function; returns the updated StudyResult."""
    from llem.cli.run import split_args
    from llem.cli.study import study_command
    from llem.study import engine

    args = ["--resume", str(study_dir)] + (["--quiet"] if quiet else [])
    study_command(args, split_args(args))
    return engine.LAST
