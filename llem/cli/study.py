"""``llem run -m ...`` (a study), ``--dry-run`` and ``--resume <study dir>``.

The grid is planned and every job validated here, before Hydra starts, so bad input exits
with code 2, one line, and no directory. Then Hydra runs with llem's sweeper, which picks the
plan up from ``llem.study.engine.CURRENT``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from llem.errors import ConfigError

_PASS_THROUGH = {"-h", "--help", "--hydra-help", "--info", "-i", "-sc", "--shell-completion", "-c", "--cfg",
                 "-p", "--package"}


def _is_hydra_override(arg: str) -> bool:
    key = arg.lstrip("+~").split("=", 1)[0]
    return key.startswith(("hydra.", "hydra/"))


def _key(arg: str) -> str:
    return arg.lstrip("+~").split("=", 1)[0]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _config_dir(parsed: dict) -> Optional[str]:
    from llem.cli.run import _resolve_config_dir

    if parsed.get("config_dir") or parsed.get("config_path"):
        return str(_resolve_config_dir(parsed))
    return None


def _study_name(sweeper_cfg, study_dir: Path) -> str:
    name = sweeper_cfg.get("study_name") if sweeper_cfg is not None else None
    if name:
        return str(name)
    try:
        rel = study_dir.relative_to(Path.cwd() / "multirun")
        return str(rel)
    except ValueError:
        return study_dir.name


def plan_from_args(overrides: list[str], *, config_dir: Optional[str], config_name: str):
    """Compose the Hydra node and the grid; validate every job and its runner.

    Returns (plan, hydra_cfg). Raises ConfigError / BackendUnavailableError (exit 2)."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from llem.config.compose import format_hydra_error
    from llem.study.plan import ExecutionOptions, check_runners, plan_grid, standalone_composer

    hydra_ovr = [a for a in overrides if _is_hydra_override(a)]
    task_ovr = [a for a in overrides if not _is_hydra_override(a)]
    with standalone_composer(config_dir, config_name) as composer:
        try:
            primary = composer.loader.load_configuration(config_name, hydra_ovr, run_mode=RunMode.MULTIRUN,
                                                         from_shell=False)
            hc = primary.hydra
            sweeper = hc.sweeper
            is_llem = str(sweeper.get("_target_", "")).endswith("LlemSweeper")
            raw = sweeper.get("params") if is_llem else None
            params = OmegaConf.to_container(raw, resolve=True) if raw else {}
            ex = ExecutionOptions(**{k: sweeper.get(k) for k in ("grid_cycles", "order", "shuffle_seed", "cooldown_s")}) \
                if is_llem else ExecutionOptions()
            sweep_dir = Path(str(hc.sweep.dir)).expanduser()
            launcher = str(hc.runtime.choices.get("hydra/launcher", "unknown"))
        except ConfigError:
            raise
        except Exception as err:  # OmegaConf raises plain AttributeError/TypeError on some bad merges
            raise ConfigError(format_hydra_error(err, config_dir)) from None
        if not is_llem:
            return None, primary
        plan = plan_grid([f"{k}={v}" for k, v in (params or {}).items()] + task_ovr, composer, ex)
    check_runners(plan)
    return plan, {"sweep_dir": sweep_dir.resolve(), "launcher": launcher, "sweeper": sweeper, "primary": primary}


def study_command(args: list[str], parsed: dict) -> int:
    from llem.cli.run import args_without_llem_flags, hydra_main
    from llem.study import engine

    flags = parsed["llem"]
    quiet, dry_run, resume = flags.get("quiet", False), flags.get("dry_run", False), flags.get("resume")
    if any(f in _PASS_THROUGH for f in parsed["hydra_flags"]):
        # --help, --info, --cfg ...: Hydra answers these itself; nothing runs
        hydra_main(args_without_llem_flags(args))
        return 0
    config_dir, config_name = _config_dir(parsed), parsed.get("config_name") or "config"
    prev = None
    if resume:
        study_dir = Path(resume).expanduser().resolve()
        prev = _load_previous(study_dir)
        from llem.study.manifest import _owner_alive

        if _owner_alive(prev.owner):
            raise ConfigError(f"--resume {study_dir}: the study is still running (pid {prev.owner.get('pid')}); "
                              "stop it first (Ctrl-C)")
        extra = parsed["overrides"]
        bad = [a for a in extra if not _key(a).startswith("hydra.launcher.")]
        if bad:
            raise ConfigError(f"--resume reruns the study as it was planned; {bad[0]!r} cannot be changed "
                              "(allowed with --resume: hydra.launcher.* settings such as timeout_s)")
        base = [a for a in prev.command_args if not _key(a).startswith("hydra.sweep.dir")]
        hydra_args = base + list(extra)
        config_dir, config_name = prev.config_dir, prev.config_name or "config"
        overrides = _strip_flag_values(hydra_args)
    else:
        hydra_args = args_without_llem_flags(args)
        overrides = parsed["overrides"]

    plan, info = plan_from_args(overrides, config_dir=config_dir, config_name=config_name)
    if plan is None:
        print("llem: hydra/sweeper is not llem's: running Hydra's sweep without llem's manifest", file=sys.stderr)
        hydra_main(hydra_args)
        return 0
    if dry_run:
        from llem.study.dryrun import print_dry_run

        print_dry_run(plan)
        return 0
    study_dir = study_dir if resume else info["sweep_dir"]
    if resume:
        _report_changes(prev, plan, quiet)
    elif (study_dir / "manifest.json").exists():
        raise ConfigError(f"hydra.sweep.dir={study_dir} already holds a study; resume it with "
                          f"`llem run --resume {study_dir}` or choose another hydra.sweep.dir")
    # the resolved directory replaces any hydra.sweep.dir given, so Hydra and the plan agree
    hydra_args = [a for a in hydra_args if not _key(a).startswith("hydra.sweep.dir")]
    run = engine.StudyRun(plan=plan, study_dir=study_dir,
                          study_name=prev.study_name if prev else _study_name(info["sweeper"], study_dir),
                          launcher_name=info["launcher"], quiet=quiet, resume=bool(resume),
                          command_args=list(hydra_args),
                          config_dir=config_dir, config_name=config_name)
    if "-m" not in hydra_args and "--multirun" not in hydra_args:
        hydra_args = ["-m", *hydra_args]
    engine.CURRENT = run
    try:
        hydra_main([*hydra_args, f"hydra.sweep.dir={_quote(str(study_dir))}"]
                   + (["hydra.verbose=false", "hydra/hydra_logging=none"] if quiet else []))
    finally:
        engine.CURRENT = None
    if run.result is None:
        raise RuntimeError("the study did not run (Hydra returned before the sweep)")
    return run.exit_code


def _strip_flag_values(args: list[str]) -> list[str]:
    from llem.cli.run import split_args

    return split_args(args)["overrides"]


def _load_previous(study_dir: Path):
    from llem.results.manifest import MANIFEST_NAME, StudyResult

    path = study_dir / MANIFEST_NAME
    if not path.is_file():
        raise ConfigError(f"--resume {study_dir}: no {MANIFEST_NAME} there; give the study directory "
                          "(multirun/<date>/<time> or the hydra.sweep.dir it ran with)")
    try:
        return StudyResult.load(path)
    except Exception as err:
        raise ConfigError(f"--resume {study_dir}: {MANIFEST_NAME} cannot be read ({type(err).__name__}); "
                          "rebuild it with llem.study.manifest.rebuild()") from None


def changed_jobs(prev, plan) -> list[tuple[str, str, str, str]]:
    """(job_id, overrides, old config_hash, new config_hash) for jobs whose recomposed config
    differs from the one recorded when the study was planned."""
    old = {e.job_id: e for e in prev.jobs}
    out = []
    for j in plan.jobs:
        e = old.get(j.job_id)
        if e is None:
            out.append((j.job_id, " ".join(j.overrides), "(not in the study)", j.config_hash))
        elif e.config_hash and e.config_hash != j.config_hash:
            out.append((j.job_id, " ".join(j.overrides), e.config_hash, j.config_hash))
    if len(plan.jobs) != len(prev.jobs):
        missing = {e.job_id for e in prev.jobs} - {j.job_id for j in plan.jobs}
        out += [(jid, " ".join(old[jid].overrides), old[jid].config_hash, "(no longer in the grid)") for jid in sorted(missing)]
    return out


def _report_changes(prev, plan, quiet: bool) -> None:
    """A completed job measured with another config cannot be mixed into the same study: refuse.
    Jobs not completed run with the current config, and we say which changed."""
    changes = changed_jobs(prev, plan)
    if not changes:
        return
    status = {e.job_id: e.status for e in prev.jobs}
    def short(h: str) -> str:
        return h if h.startswith("(") else h[:12]

    lines = [f"{jid} ({ovr}): config_hash {short(old)} -> {short(new)}" for jid, ovr, old, new in changes]
    # a grid that gained or lost jobs is another study; so is a completed job with another config
    done = [c for c in changes if status.get(c[0]) == "completed" or c[2].startswith("(") or c[3].startswith("(")]
    if done:
        raise ConfigError("the study's config changed since it ran (jobs completed, added or removed): "
                          + "; ".join(lines[:5]) + (f" (+{len(lines) - 5} more)" if len(lines) > 5 else "")
                          + ". Start a new study (another hydra.sweep.dir) to measure the new config")
    print("llem: the config changed since the study ran; these jobs will run with the current config: "
          + "; ".join(lines), file=sys.stderr)
