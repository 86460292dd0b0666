"""Compose Hydra config groups into a validated ``ExperimentConfig``.

Used by the CLI before Hydra creates any directory (so bad input leaves nothing behind), by
the study planner, and by the library API.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from llem.config.schema import ExperimentConfig
from llem.errors import ConfigError

CONFIG_NAME = "config"


def conf_dir() -> Path:
    """The config tree: ``llem/conf`` inside an installed wheel, top-level ``conf/`` in a checkout."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here / "conf", here.parent / "conf"):
        if (cand / f"{CONFIG_NAME}.yaml").is_file():
            return cand
    raise RuntimeError(f"llem's config tree was not found next to {here}")


def _format_pydantic(err: ValidationError, data: Any) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (value {e['input']!r}); check the spelling against `llem run --cfg job`")
        elif e["type"] == "literal_error":
            lines.append(f"{loc}={e['input']!r} is not allowed; {msg.replace('Input should be', 'allowed:')}")
        elif loc and msg.startswith(loc.split(".")[0]):
            lines.append(msg)
        elif loc:
            lines.append(f"{loc}={e.get('input')!r}: {msg}")
        else:
            lines.append(msg)
    return "invalid config: " + "; ".join(lines)


def validate(data: dict[str, Any]) -> ExperimentConfig:
    """Turn a plain dict (a resolved DictConfig without its ``hydra`` node) into a config."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_pydantic(err, data)) from None


def to_plain(cfg) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        raise ConfigError(f"{key or 'config'}: a required value is missing (set it with {key}=...)") from None
    data.pop("hydra", None)
    return data


_MISSING_GROUP = re.compile(r"Could not find '([^']+)/([^']+)'")
_AVAILABLE = re.compile(r"Available options:\s*(.*)", re.S)


def group_options(group: str, config_dir: str | Path | None = None) -> list[str]:
    base = Path(config_dir) if config_dir else conf_dir()
    return sorted(p.stem for p in (base / group).glob("*.yaml"))


def format_hydra_error(err: Exception, config_dir: str | Path | None = None, overrides=None) -> str:
    """Hydra's composition errors, reduced to one line that names field, value and options."""
    text = str(err)
    m = _MISSING_GROUP.search(text)
    if m:
        opts = group_options(m.group(1), config_dir)
        allowed = ", ".join(opts) if opts else "see `llem run --info`"
        return f"{m.group(1)}={m.group(2)!r} is not an option of the {m.group(1)} group; allowed: {allowed}"
    m = re.search(r"Key '([^']+)' is not in struct", text) or re.search(r"Could not override '([^']+)'", text)
    quality_off = overrides is not None and not any(str(o).lstrip("+").startswith("quality=") for o in overrides)
    if m and m.group(1).startswith("quality.") and quality_off:
        # the quality group's default (none) has no fields: they come with quality=lm_eval
        return (f"{m.group(1)}: unknown key with quality=none; allowed: add quality=lm_eval (its keys: "
                "`llem run quality=lm_eval --cfg job`)")
    if m:
        return f"{m.group(1)}: unknown key; use `llem run --cfg job` to list keys, or +{m.group(1)}=... to add one"
    m = re.search(r"Could not delete from config. '([^']+)' does not exist", text)
    if m:
        return f"~{m.group(1)}: no such key to delete"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return f"invalid override: {first}"


def compose(overrides: Iterable[str] = (), *, config_dir: str | Path | None = None,
            config_name: str = CONFIG_NAME, return_hydra_cfg: bool = False):
    """Compose the config with Hydra's compose API (no directories, no side effects)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    cdir = str(Path(config_dir).resolve()) if config_dir else str(conf_dir())
    overrides = list(overrides)
    if cdir != str(conf_dir()) and not any(o.startswith("hydra.searchpath") for o in overrides):
        # a user config dir (-cd) composes llem's own groups too, as `llem run -cd` does
        overrides.append(f"hydra.searchpath=[file://{conf_dir()}]")
    try:
        with initialize_config_dir(config_dir=cdir, version_base=None, job_name="llem"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides,
                                return_hydra_config=return_hydra_cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ConfigError(format_hydra_error(err, cdir, overrides)) from None
    return cfg


def load_config(overrides: Iterable[str] = (), **kw) -> ExperimentConfig:
    """Overrides (Hydra syntax) -> validated ``ExperimentConfig``."""
    return validate(to_plain(compose(overrides, **kw)))
