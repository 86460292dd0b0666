"""Compose Hydra config groups into a validated ``ExperimentConfig``.

Used by the CLI before Hydra creates any directory (so bad input leaves nothing behind), by
the study planner, and by the library API.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Optional

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
        if e["type"] == "bool_as_number":
            shown = str(e["input"]).lower()
            lines.append(f"{loc}={shown} is not allowed: a boolean is not a number; allowed: {e['ctx']['allowed']}")
        elif e["type"] == "extra_forbidden":
            lines.append(unknown_key_message(loc, e["input"], with_value=True))
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


#: the longest override key llem takes: Hydra looks keys up as config-group paths, and a
#: file name over 255 bytes makes the file system raise instead of answering "no such group"
MAX_KEY_CHARS = 255


def compose_errors() -> tuple[type, ...]:
    """What Hydra's composition raises for bad input: its own errors, OmegaConf's, YAML
    syntax errors in a config file, and OS errors from looking up a key as a file path."""
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return HydraException, OmegaConfBaseException, ValueError, yaml.YAMLError, OSError


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def check_override_keys(overrides: Iterable[str]) -> None:
    """Refuse, before Hydra sees them, keys no config can have (too long for a file name)."""
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        if len(key) > MAX_KEY_CHARS:
            raise ConfigError(f"override key {_short(key)!r} is {len(key)} characters long; allowed: keys of at most "
                              f"{MAX_KEY_CHARS} characters (`llem run --cfg job` lists them)",
                              field=_short(key), value=len(key), allowed=f"<= {MAX_KEY_CHARS} characters")


def _schema_keys(model, prefix: str = "") -> list[str]:
    import typing

    from pydantic import BaseModel

    out = []
    for name, f in model.model_fields.items():
        out.append(prefix + name)
        args = typing.get_args(f.annotation) or (f.annotation,)
        for a in args:
            if isinstance(a, type) and issubclass(a, BaseModel):
                out += _schema_keys(a, f"{prefix}{name}.")
    return out


def known_keys() -> list[str]:
    """Every key an experiment config can have, dotted, plus llem's sweeper and launcher keys."""
    from dataclasses import fields

    from llem.config.launch import LlemLocalLauncherConf, LlemSweeperConf

    keys = _schema_keys(ExperimentConfig)
    keys += [f"hydra.sweeper.{f.name}" for f in fields(LlemSweeperConf) if not f.name.startswith("_")]
    keys += [f"hydra.launcher.{f.name}" for f in fields(LlemLocalLauncherConf) if not f.name.startswith("_")]
    return keys


def did_you_mean(key: str) -> str:
    """" (did you mean 'batch'?)" for a misspelt key, else "" (never the key itself: a key that
    exists somewhere is not misspelt, it is missing from this config for another reason)."""
    import difflib

    close = difflib.get_close_matches(key, [k for k in known_keys() if k != key], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def override_key(override: str) -> str:
    """The key an override sets: ``++vllm.enforce_eager=true`` -> ``vllm.enforce_eager``."""
    return override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def backend_section(override: str) -> Optional[str]:
    """The backend whose own section (``vllm:``, ``pytorch:``, ``tensorrt:``) an override sets,
    else None: ``vllm.enforce_eager=true`` -> ``vllm``; ``backend=vllm`` and ``runner.vllm=...``
    -> None (every job has those keys)."""
    from llem.config.schema import BACKENDS

    top = override_key(override).split(".", 1)[0]
    return top if top in BACKENDS else None


def other_backend_message(override: str, has: Iterable[str], what: str = "this run") -> str:
    """One line for an override of a backend's section where ``what`` (a run, a grid) has only
    other backends: the key exists, it just does not apply."""
    b = backend_section(override)
    backends = sorted({str(x) for x in has})
    shown = ",".join(backends)
    fix = f"add {b} to the grid: backend={shown},{b}" if what == "this grid" else f"add backend={b}"
    return f"{override}: applies to backend={b} only; {what} has backend={shown} ({fix}, or leave the key out)"


def unknown_key_message(key: str, value: Any = None, *, with_value: bool = False) -> str:
    shown = f" (value {value!r})" if with_value else ""
    section = backend_section(key)
    if section is not None and key in known_keys():
        # a real key of another backend's section, where the composed config has no such section
        return (f"{key}{shown}: applies to backend={section} only, and this config has another backend; "
                f"allowed: add backend={section}, or leave the key out")
    hint = did_you_mean(key)
    if key.startswith("hydra."):
        return (f"{key}: unknown key{shown}{hint}; allowed: the keys `llem run --cfg hydra` lists, "
                f"or +{key}=... to add one")
    return f"{key}: unknown key{shown}{hint}; allowed: the keys `llem run --cfg job` lists"


_MISSING_GROUP = re.compile(r"Could not find '([^']+)/([^']+)'")
_AVAILABLE = re.compile(r"Available options:\s*(.*)", re.S)


def group_options(group: str, config_dir: str | Path | None = None) -> list[str]:
    base = Path(config_dir) if config_dir else conf_dir()
    return sorted(p.stem for p in (base / group).glob("*.yaml"))


#: what Hydra's override grammar takes unquoted in a value (OverrideLexer.g4: ID, UNQUOTED_CHAR, WS, ':')
UNQUOTED_ALLOWED = "ASCII letters, digits, spaces and _ - + . / \\ : $ % * @ ? |"


def _yaml_error(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = " ".join(str(getattr(err, "problem", None) or getattr(err, "context", None) or err).split())
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "a config file"
    return (f"config file {where}: not valid YAML ({problem}); allowed: a YAML mapping of config keys to "
            "values (check brackets, quotes and indentation there)")


def _lexer_error(text: str) -> str:
    lines = text.splitlines()
    head = "LexerNoViableAltException: "
    override = lines[0][len(head):] if lines[0].startswith(head) else lines[0]
    bad = ""
    if len(lines) > 1 and "^" in lines[1]:
        at = lines[1].index("^") - len(head)
        if 0 <= at < len(override):
            bad = f" character {override[at]!r} at position {at + 1}"
    key, _, value = override.partition("=")
    quoted = f"'{key}=\"{value}\"'" if value else "quotes around the value"
    return (f"{override}:{bad} cannot be read by Hydra's override syntax; allowed unquoted: {UNQUOTED_ALLOWED}; "
            f"quote anything else, e.g. {quoted}")


def format_hydra_error(err: Exception, config_dir: str | Path | None = None, overrides=None) -> str:
    """Hydra's composition errors, reduced to one line that names field, value and options."""
    import yaml

    if isinstance(err, yaml.YAMLError):
        return _yaml_error(err)
    if isinstance(err, OSError) and err.filename:
        return (f"{_short(str(err.filename), 80)}: {err.strerror}; allowed: readable config files, and override "
                "keys that name config values")
    text = str(err)
    if text.startswith("LexerNoViableAltException"):
        return _lexer_error(text)
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
        return unknown_key_message(m.group(1))
    m = re.search(r"Could not delete from config. '([^']+)' does not exist", text)
    if m:
        return f"~{m.group(1)}: no such key to delete"
    m = re.match(r"Error merging override ([^=\s]+)=(.*)", text)
    cause = str(err.__cause__).strip().splitlines()[0] if err.__cause__ is not None and str(err.__cause__).strip() else ""
    if m and cause:
        # a typed node refused the value (OmegaConf says why: "Value 'maybe' is not a valid bool")
        allowed = "; allowed: true or false" if "valid bool" in cause else ""
        return f"{m.group(1)}={m.group(2)!r} is not allowed: {cause}{allowed}"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return f"invalid override: {first}"


def compose(overrides: Iterable[str] = (), *, config_dir: str | Path | None = None,
            config_name: str = CONFIG_NAME, return_hydra_cfg: bool = False):
    """Compose the config with Hydra's compose API (no directories, no side effects)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    cdir = str(Path(config_dir).resolve()) if config_dir else str(conf_dir())
    overrides = list(overrides)
    check_override_keys(overrides)
    if cdir != str(conf_dir()) and not any(o.startswith("hydra.searchpath") for o in overrides):
        # a user config dir (-cd) composes llem's own groups too, as `llem run -cd` does
        overrides.append(f"hydra.searchpath=[file://{conf_dir()}]")
    sections = [o for o in overrides if backend_section(o)]
    try:
        with initialize_config_dir(config_dir=cdir, version_base=None, job_name="llem"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides,
                                return_hydra_config=return_hydra_cfg)
    except compose_errors() as err:
        # a key of another backend's section (`backend=pytorch vllm.enforce_eager=true`) is not
        # unknown: say which backend it belongs to (the run's backend is read without those keys)
        other = _other_backend_error(sections, overrides, config_dir, config_name) if sections else None
        raise (other or ConfigError(format_hydra_error(err, cdir, overrides))) from None
    if sections:
        # `+vllm.x=...` adds a `vllm:` section that a pytorch run refuses later: the same line, now
        other = _other_backend_error(sections, overrides, config_dir, config_name, backend=cfg.get("backend"))
        if other is not None:
            raise other
    return cfg


def _other_backend_error(sections: list[str], overrides: list[str], config_dir, config_name: str,
                         backend: Any = None) -> Optional[ConfigError]:
    """The error for the first override of ``sections`` that sets another backend's section than
    the run's, or None. ``backend``: the run's, where known; else it is composed without them."""
    if backend is None:
        try:
            backend = compose([o for o in overrides if o not in sections], config_dir=config_dir,
                              config_name=config_name).get("backend")
        except ConfigError:
            return None  # the config is wrong without them too: that error is the one to show
    if not isinstance(backend, str):
        return None
    for o in sections:
        if backend_section(o) != backend:
            return ConfigError(other_backend_message(o, [backend]), field=override_key(o),
                               value=o.split("=", 1)[1] if "=" in o else None, allowed=f"with backend={backend_section(o)}")
    return None


def load_config(overrides: Iterable[str] = (), **kw) -> ExperimentConfig:
    """Overrides (Hydra syntax) -> validated ``ExperimentConfig``."""
    return validate(to_plain(compose(overrides, **kw)))


def check_launcher(launcher: Any) -> None:
    """``hydra.launcher.*`` values that would stop every job at once or never: refused before
    the study starts (``launcher`` is the composed ``hydra.launcher`` node)."""
    from omegaconf import OmegaConf

    # unresolved: other keys interpolate run-time values (${hydra.sweep.dir}); these three never need to
    node = OmegaConf.to_container(launcher, resolve=False) if OmegaConf.is_config(launcher) else dict(launcher or {})
    target = str(node.get("_target_", ""))
    rules = []
    if target.endswith("LlemLocalLauncher"):
        rules = [("timeout_s", lambda v: v is None or v > 0, "seconds > 0, or null for no limit"),
                 ("kill_grace_s", lambda v: v is not None and v >= 0, "seconds >= 0")]
    elif "submitit" in target.lower() or "slurm" in target.lower():
        rules = [("timeout_min", lambda v: v is not None and v >= 1, "minutes >= 1")]
    for key, ok, allowed in rules:
        v = node.get(key)
        if isinstance(v, str) and v.startswith("${"):
            continue  # an interpolation: its value is known only when Hydra resolves it
        bad = isinstance(v, bool) or (v is not None and not isinstance(v, (int, float)))
        if bad or not ok(v):
            shown = f"{v:g}" if isinstance(v, float) else repr(v)
            raise ConfigError(f"hydra.launcher.{key}={shown} is not allowed; allowed: {allowed}",
                              field=f"hydra.launcher.{key}", value=v, allowed=allowed)
    if "slurm" in target.lower():
        # Slurm sends its time-limit warning signal_delay_s before the limit; due at or before the
        # job's start, it reaches a process that has no handler yet (SIGUSR2's default ends it)
        limit, delay = node.get("timeout_min"), node.get("signal_delay_s")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (limit, delay))
        if numbers and delay >= limit * 60:
            allowed = f"signal_delay_s below timeout_min x 60 = {limit * 60:g} s"
            raise ConfigError(f"hydra.launcher.signal_delay_s={delay:g} with hydra.launcher.timeout_min={limit:g}: "
                              f"Slurm's time-limit warning would be due as the job starts; allowed: {allowed}",
                              field="hydra.launcher.signal_delay_s", value=delay, allowed=allowed)


def launcher_runs_jobs_here(launcher: Any) -> bool:
    """False for launchers whose jobs run on other machines (Slurm): checks that depend on
    this machine's hardware must not refuse what a compute node can do."""
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    return "slurm" not in target.lower()
