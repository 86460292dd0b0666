"""``llem run``: hand the arguments to Hydra, after validating them.

The config is composed and validated *before* Hydra starts, so bad input exits with code 2,
one line naming the field, and no run directory. Studies (``-m``) go through llem's sweeper.
"""
from __future__ import annotations

import sys
from pathlib import Path

from llem.errors import ConfigError

# Hydra flags that take a value (so their value is not an override)
_VALUE_FLAGS = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package",
                "-c", "--cfg", "-sc", "--shell-completion", "--experimental-rerun", "--info"}
_NO_VALIDATE = {"-h", "--help", "--hydra-help", "--info", "-i", "-sc", "--shell-completion", "--version"}
# llem's own flags, removed before Hydra sees the arguments
LLEM_FLAGS = {"--dry-run", "--quiet", "-q"}

_state = {"exit_code": 0}


def split_args(args: list[str]) -> dict:
    """Separate Hydra flags, llem flags and overrides."""
    out = {"overrides": [], "hydra_flags": [], "llem": {}, "multirun": False, "config_dir": None,
           "config_path": None, "config_name": "config", "cfg": None}
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--dry-run",):
            out["llem"]["dry_run"] = True
        elif a in ("--quiet", "-q"):
            out["llem"]["quiet"] = True
        elif a == "--resume":
            if i + 1 >= len(args):
                raise ConfigError("--resume needs the study directory, e.g. --resume multirun/<study>")
            out["llem"]["resume"] = args[i + 1]
            i += 1
        elif a.startswith("--resume="):
            out["llem"]["resume"] = a.split("=", 1)[1]
        elif a in ("-m", "--multirun"):
            out["multirun"] = True
            out["hydra_flags"].append(a)
        elif a in ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name"):
            if i + 1 >= len(args):
                raise ConfigError(f"{a} needs a value")
            key = {"-cd": "config_dir", "--config-dir": "config_dir", "-cp": "config_path",
                   "--config-path": "config_path", "-cn": "config_name", "--config-name": "config_name"}[a]
            out[key] = args[i + 1]
            out["hydra_flags"] += [a, args[i + 1]]
            i += 1
        elif a.startswith(("--config-dir=", "--config-path=", "--config-name=")):
            k, v = a[2:].split("=", 1)
            out[k.replace("-", "_")] = v
            out["hydra_flags"].append(a)
        elif a in ("-c", "--cfg", "-p", "--package", "--experimental-rerun", "-sc", "--shell-completion"):
            out["hydra_flags"].append(a)
            if i + 1 < len(args) and not args[i + 1].startswith("-"):
                out["hydra_flags"].append(args[i + 1])
                if a in ("-c", "--cfg"):
                    out["cfg"] = args[i + 1]
                i += 1
        elif a.startswith("-") and not a.startswith(("+", "~")) and "=" not in a:
            out["hydra_flags"].append(a)
            if a == "--info" and i + 1 < len(args) and not args[i + 1].startswith("-") and "=" not in args[i + 1]:
                out["hydra_flags"].append(args[i + 1])
                i += 1
        else:
            out["overrides"].append(a)
        i += 1
    return out


def _resolve_config_dir(parsed: dict) -> Path:
    from llem.config.compose import conf_dir

    if parsed["config_dir"]:
        return Path(parsed["config_dir"]).expanduser().resolve()
    if parsed["config_path"]:
        p = Path(parsed["config_path"]).expanduser()
        return p.resolve()
    return conf_dir()


def run_command(args: list[str]) -> int:
    parsed = split_args(args)
    if parsed["multirun"] or "resume" in parsed["llem"]:
        from llem.cli.study import study_command

        return study_command(args, parsed)
    if parsed["llem"].get("dry_run"):
        raise ConfigError("--dry-run previews a study grid: use it with -m (e.g. llem run -m batch=1,8 --dry-run)")
    skip_validation = any(f in _NO_VALIDATE for f in parsed["hydra_flags"])
    if not skip_validation:
        from llem.config.compose import load_config

        cdir = _resolve_config_dir(parsed)
        if not (cdir / f"{parsed['config_name']}.yaml").is_file() and not parsed["config_dir"]:
            raise ConfigError(f"config {parsed['config_name']!r} not found in {cdir}")
        # validated here, before Hydra starts, so bad input exits 2 with nothing written
        load_config(parsed["overrides"], config_dir=cdir if not parsed["config_dir"] else _merged_dir(parsed),
                    config_name=parsed["config_name"])
    _state["quiet"] = parsed["llem"].get("quiet", False)
    _state["exit_code"] = 0
    hydra_main(absolute_config_path(args_without_llem_flags(args)))
    return _state["exit_code"]


def _merged_dir(parsed: dict) -> Path:
    """-cd DIR: a user config dir that may reuse llem's groups. Compose from DIR with llem's
    own tree on the search path, as Hydra does."""
    return Path(parsed["config_dir"]).expanduser().resolve()


def args_without_llem_flags(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in LLEM_FLAGS:
            continue
        if a == "--resume":
            skip = True
            continue
        if a.startswith("--resume="):
            continue
        out.append(a)
    return out


def absolute_config_path(args: list[str]) -> list[str]:
    """Hydra reads -cp relative to the app's module; users mean relative to where they are."""
    out = list(args)
    for i, a in enumerate(out):
        if a in ("-cp", "--config-path") and i + 1 < len(out):
            out[i + 1] = str(Path(out[i + 1]).expanduser().resolve())
        elif a.startswith("--config-path="):
            out[i] = "--config-path=" + str(Path(a.split("=", 1)[1]).expanduser().resolve())
    return out


def task(cfg) -> int:
    """Hydra's task function: validate, run, write result.json into the run directory.

    It never raises: a failure is written as a failed result and reported by exit code.
    """
    from hydra.core.hydra_config import HydraConfig

    from llem.cli.summary import print_summary
    from llem.config.compose import to_plain, validate
    from llem.runners.jobs import execute_job

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = validate(to_plain(cfg))
    except ConfigError as err:
        print(f"llem: error: {err}", file=sys.stderr)
        _state["exit_code"] = 2
        return 2
    import logging

    from llem.runners.logfilter import collapse_repeats

    log = logging.getLogger("llem")
    with collapse_repeats():
        result = execute_job(config, out_dir, progress=log.info, raise_errors=False)
    if not _state.get("quiet"):
        print_summary(result, out_dir / "result.json")
    if result.status != "completed":
        _state["exit_code"] = 1
        print(f"llem: job failed: {result.error_type}: {result.error_message}", file=sys.stderr)
        return 1
    return 0


def hydra_main(args: list[str]) -> None:
    import hydra

    from llem.config.compose import conf_dir

    old = sys.argv
    sys.argv = ["llem run", *args]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="config", version_base=None)(task)()
    finally:
        sys.argv = old
