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
LLEM_FLAGS = {"--dry-run", "--quiet", "-q", "--rebuild-manifest"}
# llem's flags that take a value (``--objective X`` or ``--objective=X``); the last three shape a
# search (hydra/sweeper=optuna, docs/search.md) and may be repeated where a list makes sense
LLEM_VALUE_FLAGS = {"--resume": "resume", "--objective": "objective", "--constraint": "constraint",
                    "--confirm": "confirm", "--live": "live"}
# every flag Hydra's command line takes (hydra/_internal/utils.py get_args_parser)
HYDRA_FLAGS = {"-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "--resolve", "-p", "--package", "-r", "--run",
               "-m", "--multirun", "-sc", "--shell-completion", "-cp", "--config-path", "-cn", "--config-name",
               "-cd", "--config-dir", "--experimental-rerun", "-i", "--info"}
KNOWN_FLAGS = LLEM_FLAGS | HYDRA_FLAGS | set(LLEM_VALUE_FLAGS)


def _unknown_flag(flag: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(flag.split("=", 1)[0], sorted(KNOWN_FLAGS), n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"{flag}: unknown flag{hint}; allowed: llem's --dry-run, --quiet/-q, --resume DIR, --rebuild-manifest, "
                       "--live URL, --objective, --constraint, --confirm and Hydra's "
                       "-m, --cfg job|hydra|all, --resolve, -p, -cd, -cn, -cp, --info, --help; overrides are key=value",
                       field="flag", value=flag, allowed=sorted(KNOWN_FLAGS))

_state = {"exit_code": 0}

#: ``llem run --help`` prints this first, then Hydra's help (config groups and every field).
RUN_HELP = """usage: llem run [llem flags] [overrides ...] [Hydra flags]

llem's flags:
  -m, --multirun       run a study: every combination of comma-separated overrides (batch=1,8)
  --dry-run            with -m: list the study's jobs and check each one, run nothing
  --resume DIR         finish a study: run its jobs that did not complete (DIR: multirun/<date>/<time>)
  -q, --quiet          no progress or summary on the terminal; llem's warnings and errors still show
  --live URL           with -m or --resume: show the study's progress and GPU power on an llem serve
                       page as it runs (token in $LLEM_API_TOKEN); the study never waits for the server
  with -m hydra/sweeper=optuna (a search for the best configuration, docs/search.md):
  --objective METRIC   what the search optimises (default energy_per_output_token_j); several
                       (comma-separated or repeated) give a Pareto front
  --constraint C       METRIC>=NUMBER or METRIC<=NUMBER, e.g. 'output_tokens_per_s>=1000' (repeatable)
  --confirm K          measure the K best candidates again before naming one (default 0)
  --cfg job            print the composed config and run nothing (a Hydra flag)
  -h, --help           this help, then Hydra's: config groups and every field you can override

examples:
  llem run                                     # the default experiment (tiny model, no download)
  llem run model=llama-3.2-1b batch=8          # override any field as key=value
  llem run -m backend=vllm,pytorch batch=1,8   # a study of four jobs under multirun/
  llem run -m hydra/sweeper=optuna hydra.sweeper.n_trials=20 'batch=choice(1,8,32,128)' \
      'output_len=choice(64,128,256)' --constraint 'output_tokens_per_s>=1000' --confirm 3
                                               # search 20 configurations for the least J/token
  llem run --resume multirun/2026-12-07/10-00-00

"""


_VALUE_HINTS = {
    "--resume": "--resume needs the study directory, e.g. --resume multirun/<study>",
    "--objective": "--objective needs a metric, e.g. --objective energy_per_output_token_j",
    "--constraint": "--constraint needs METRIC>=NUMBER or METRIC<=NUMBER, e.g. --constraint 'output_tokens_per_s>=1000'",
    "--confirm": "--confirm needs how many candidates to measure again, e.g. --confirm 3",
    "--live": "--live needs the llem serve URL, e.g. --live http://127.0.0.1:8000",
}


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
        elif a == "--rebuild-manifest":
            out["llem"]["rebuild_manifest"] = True
        elif a in LLEM_VALUE_FLAGS or a.split("=", 1)[0] in LLEM_VALUE_FLAGS:
            flag = a.split("=", 1)[0]
            if "=" in a:
                value = a.split("=", 1)[1]
            elif i + 1 >= len(args):
                raise ConfigError(_VALUE_HINTS[flag], field=flag, value=None, allowed=_VALUE_HINTS[flag])
            else:
                value = args[i + 1]
                i += 1
            name = LLEM_VALUE_FLAGS[flag]
            if name in ("objective", "constraint"):
                out["llem"].setdefault(name, []).append(value)
            elif name == "confirm":
                try:
                    out["llem"]["confirm"] = int(value)
                except ValueError:
                    raise ConfigError(f"--confirm={value}: allowed: an integer >= 0 (how many of the best candidates "
                                      "are measured again before one is named)", field="--confirm", value=value,
                                      allowed="an integer >= 0") from None
            else:
                out["llem"][name] = value
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
        elif a.startswith("-") and a.split("=", 1)[0] not in KNOWN_FLAGS:
            # an unknown flag is refused, never passed on or dropped (a --dry-run study would
            # otherwise ignore it in silence, and Hydra answers with its whole usage text)
            raise _unknown_flag(a)
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
    from llem.config.compose import check_override_keys

    parsed = split_args(args)
    check_override_keys(parsed["overrides"])
    if any(f in ("-h", "--help") for f in parsed["hydra_flags"]):
        # llem's own flags first: Hydra's help below knows nothing of them
        print(RUN_HELP, end="", flush=True)
    _state["single_run"] = False
    if parsed["multirun"] or "resume" in parsed["llem"]:
        from llem.cli.study import study_command

        return study_command(args, parsed)
    if parsed["llem"].get("dry_run"):
        raise ConfigError("--dry-run previews a study grid: use it with -m (e.g. llem run -m batch=1,8 --dry-run)")
    if "live" in parsed["llem"]:
        raise ConfigError("--live reports a study's progress: use it with -m (e.g. llem run -m batch=1,8 --live URL) "
                          "or with --resume DIR", field="live", value=parsed["llem"]["live"], allowed="with -m")
    for flag in ("objective", "constraint", "confirm"):
        if flag in parsed["llem"]:
            raise ConfigError(f"--{flag} shapes a search: use it with -m hydra/sweeper=optuna (docs/search.md)",
                              field=f"--{flag}", value=parsed["llem"][flag], allowed="with -m hydra/sweeper=optuna")
    skip_validation = any(f in _NO_VALIDATE for f in parsed["hydra_flags"])
    if not skip_validation:
        from omegaconf import open_dict

        from llem.backends import check_runs_here
        from llem.config.compose import check_launcher, compose, to_plain, validate

        cdir = _resolve_config_dir(parsed)
        if not (cdir / f"{parsed['config_name']}.yaml").is_file() and not parsed["config_dir"]:
            raise ConfigError(f"config {parsed['config_name']!r} not found in {cdir}")
        # validated here, before Hydra starts, so bad input exits 2 with nothing written
        cdir = cdir if not parsed["config_dir"] else _merged_dir(parsed)
        cfg = compose(parsed["overrides"], config_dir=cdir, config_name=parsed["config_name"], return_hydra_cfg=True)
        # a single run uses no launcher, but a launcher setting given is checked as in a study
        check_launcher(cfg.hydra.launcher)
        check_run_dir(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        # a single run runs on this machine: what its hardware cannot do is refused now
        check_runs_here(validate(to_plain(cfg)))
    _state["quiet"] = parsed["llem"].get("quiet", False)
    _state["exit_code"] = 0
    _state["single_run"] = True
    hydra_main(absolute_config_path(args_without_llem_flags(args)))
    return _state["exit_code"]


def check_run_dir(cfg) -> None:
    """A run directory that cannot be created or written is bad input: one line, exit 2, before
    Hydra starts (Hydra itself would fail with a traceback when it creates the directory).
    ``cfg``: the composed config with its ``hydra`` node."""
    import os

    try:
        run_dir = Path(str(cfg.hydra.run.dir)).expanduser()
    except Exception:
        return  # an interpolation only Hydra's own run can resolve: Hydra checks it then
    what = f"hydra.run.dir={run_dir}"
    probe = run_dir.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{what}: {probe} is a file, not a directory; choose another hydra.run.dir",
                          field="hydra.run.dir", value=str(run_dir), allowed="a writable directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        from llem.cli.study import _why_unwritable

        raise ConfigError(f"{what}: cannot write in {probe} ({_why_unwritable(probe)}); choose a writable "
                          "directory, e.g. hydra.run.dir=outputs/run1", field="hydra.run.dir", value=str(run_dir),
                          allowed="a writable directory")


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
        if a in LLEM_VALUE_FLAGS:
            skip = True
            continue
        if a.split("=", 1)[0] in LLEM_VALUE_FLAGS:
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
    import contextlib
    import logging

    from llem.runners.logfilter import collapse_repeats, job_output_to_log

    log = logging.getLogger("llem")
    log_path = out_dir / "run.log"
    # A single run's terminal shows llem's own lines; third-party output goes to run.log. In a
    # study this process's output is already the job's log, and the study's terminal shows progress.
    quiet_terminal = (job_output_to_log(log_path, quiet=_state.get("quiet", False))
                      if _state.get("single_run") else contextlib.nullcontext())
    try:
        with quiet_terminal, collapse_repeats():
            result = execute_job(config, out_dir, progress=log.info, raise_errors=False)
    except OSError as err:
        # result.json (or the timeseries) could not be written: a full disk, a quota, a
        # directory made read-only while the job ran. Nothing else can record it: say it once.
        where = f" {err.filename}" if err.filename else f" in {out_dir}"
        print(f"llem: error: cannot write{where} ({err.strerror or err}); the measurement is lost: "
              "free space or fix the permission and run again", file=sys.stderr)
        _state["exit_code"] = 1
        return 1
    if not _state.get("quiet"):
        print_summary(result, out_dir / "result.json")
    if result.status != "completed":
        _state["exit_code"] = 1
        where = f" (full output in {log_path})" if _state.get("single_run") else ""
        print(f"llem: job failed: {result.error_type}: {result.error_message}{where}", file=sys.stderr)
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
