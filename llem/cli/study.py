"""``llem run -m ...`` (a study), ``--dry-run`` and ``--resume <study dir>``.

The grid is planned and every job validated here, before Hydra starts, so bad input exits
with code 2, one line, and no directory. Then Hydra runs with llem's sweeper, which picks the
plan up from ``llem.study.engine.CURRENT``.
"""
from __future__ import annotations

import os
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


def plan_from_args(overrides: list[str], *, config_dir: Optional[str], config_name: str,
                   search_flags: Optional[dict] = None, previous=None):
    """Compose the Hydra node and the grid (or the search: hydra/sweeper=optuna); validate every
    job (every value of a search's space) and its runner.

    ``search_flags``: llem's --objective/--constraint/--confirm. ``previous``: the manifest of a
    search being resumed, whose completed trials must still compose to the config they measured.
    Returns (plan, info). Raises ConfigError / BackendUnavailableError (exit 2)."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from llem.backends import check_runs_here
    from llem.config.compose import check_launcher, format_hydra_error, launcher_runs_jobs_here
    from llem.study.plan import ExecutionOptions, check_runners, plan_grid, standalone_composer
    from llem.study.search import LLEM_OPTUNA_SWEEPER, OPTUNA_SWEEPER

    hydra_ovr = [a for a in overrides if _is_hydra_override(a)]
    task_ovr = [a for a in overrides if not _is_hydra_override(a)]
    if "hydra/sweeper=optuna" in hydra_ovr and not search_plugin_installed():
        raise ConfigError("hydra/sweeper=optuna needs hydra-optuna-sweeper, which is not installed; install llem's "
                          "search extra: pip install 'llenergymeasure[search]' (or bash scripts/setup.sh --search)",
                          field="hydra/sweeper", value="optuna", allowed="llem (or optuna, once installed)")
    with standalone_composer(config_dir, config_name) as composer:
        try:
            primary = composer.loader.load_configuration(config_name, hydra_ovr, run_mode=RunMode.MULTIRUN,
                                                         from_shell=False)
            hc = primary.hydra
            sweeper = hc.sweeper
            is_llem = str(sweeper.get("_target_", "")).endswith("LlemSweeper")
            is_search = str(sweeper.get("_target_", "")) in (OPTUNA_SWEEPER, LLEM_OPTUNA_SWEEPER)
            raw = sweeper.get("params") if is_llem else None
            params = OmegaConf.to_container(raw, resolve=True) if raw else {}
            ex = ExecutionOptions(**{k: sweeper.get(k) for k in ("grid_cycles", "order", "shuffle_seed", "cooldown_s")}) \
                if is_llem else ExecutionOptions()
            sweep_dir = Path(str(hc.sweep.dir)).expanduser()
            launcher = str(hc.runtime.choices.get("hydra/launcher", "unknown"))
            check_launcher(hc.launcher)
            here = launcher_runs_jobs_here(hc.launcher)
        except ConfigError:
            raise
        except Exception as err:  # OmegaConf raises plain AttributeError/TypeError on some bad merges
            raise ConfigError(format_hydra_error(err, config_dir)) from None
        flags = {k: v for k, v in (search_flags or {}).items() if v not in (None, [])}
        if flags and not is_search:
            flag = next(iter(flags))
            raise ConfigError(f"--{flag} shapes a search: add hydra/sweeper=optuna (docs/search.md)",
                              field=f"--{flag}", value=flags[flag], allowed="with -m hydra/sweeper=optuna")
        if is_search:
            from llem.study.search import plan_search

            plan = plan_search(task_ovr, composer, OmegaConf.to_container(sweeper, resolve=True),
                               objectives=flags.get("objective") or [], constraints=flags.get("constraint") or [],
                               confirm=flags.get("confirm"), given_hydra=hydra_ovr)
            configs = [(f"search space ({' '.join(o) or '(no overrides)'})", c) for o, c in plan.checked]
            if previous is not None:
                _check_search_unchanged(previous, composer)
        elif not is_llem:
            return None, primary
        else:
            plan = plan_grid([f"{k}={v}" for k, v in (params or {}).items()] + task_ovr, composer, ex)
            configs = [(f"job {p.grid_index} ({' '.join(p.overrides) or '(no overrides)'})", p.config)
                       for p in plan.points]
    if is_search:
        from llem.runners import resolve_runner

        for key in dict.fromkeys((c.backend, getattr(c.runner, c.backend)) for _, c in configs):
            resolve_runner(*key).describe()
    else:
        check_runners(plan)
    if here:
        # jobs run on this machine (not on Slurm's compute nodes): what its hardware cannot do
        # is refused now, in a --dry-run too
        for what, cfg in configs:
            try:
                check_runs_here(cfg)
            except ConfigError as err:
                raise ConfigError(f"{what}: {err}") from None
    return plan, {"sweep_dir": sweep_dir.resolve(), "launcher": launcher, "sweeper": sweeper, "primary": primary,
                  "search": is_search}


def search_plugin_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except (ImportError, ValueError):
        return False


def _check_search_unchanged(previous, composer) -> None:
    """A search's completed trials measured the configs their overrides composed to then; if the
    config files changed since, the search cannot go on mixing the two (as for a grid)."""
    changed = []
    for e in previous.jobs:
        if e.status != "completed" or not e.config_hash:
            continue
        try:
            h = composer.compose(list(e.overrides)).config_hash
        except ConfigError:
            h = "(no longer valid)"
        if h != e.config_hash:
            changed.append(f"{e.job_id} ({' '.join(e.overrides)}): config_hash {e.config_hash[:12]} -> {h[:12]}")
    if changed:
        raise ConfigError("the search's config changed since it ran (completed trials): " + "; ".join(changed[:5])
                          + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else "")
                          + ". Start a new search (another hydra.sweep.dir) to measure the new config")


def study_command(args: list[str], parsed: dict) -> int:
    from contextlib import ExitStack

    # The study's OS lock is taken before anything is read or checked, and held until the study
    # ends: of two processes started together on one study, exactly one runs it.
    with ExitStack() as held:
        return _study_command(args, parsed, held)


def _study_command(args: list[str], parsed: dict, held) -> int:
    from llem.cli.run import args_without_llem_flags, hydra_main
    from llem.study import engine
    from llem.study.lock import StudyLock

    flags = parsed["llem"]
    quiet, dry_run, resume = flags.get("quiet", False), flags.get("dry_run", False), flags.get("resume")
    search_flags = {k: flags[k] for k in ("objective", "constraint", "confirm") if k in flags}
    rebuild_manifest = flags.get("rebuild_manifest", False)
    if rebuild_manifest and not resume:
        raise ConfigError("--rebuild-manifest rebuilds a study's manifest.json before resuming it: "
                          "use it with --resume DIR")
    if rebuild_manifest and dry_run:
        raise ConfigError("--rebuild-manifest writes manifest.json and --dry-run writes nothing: give one of them")
    live_url = live_token = None
    if flags.get("live") is not None:
        from llem.results.remote import api_token, check_url

        if dry_run:
            raise ConfigError("--live shows a running study and --dry-run runs nothing: give one of them",
                              field="live", value=flags["live"], allowed="without --dry-run")
        live_url, live_token = check_url(flags["live"], "--live"), api_token("--live")
    if any(f in _PASS_THROUGH for f in parsed["hydra_flags"]):
        # --help, --info, --cfg ...: Hydra answers these itself; nothing runs
        hydra_main(args_without_llem_flags(args))
        return 0
    config_dir, config_name = _config_dir(parsed), parsed.get("config_name") or "config"
    prev = None
    if resume:
        study_dir = Path(resume).expanduser().resolve()
        if not study_dir.is_dir():
            raise ConfigError(f"--resume {study_dir}: no such directory; give the study directory "
                              "(multirun/<date>/<time> or the hydra.sweep.dir it ran with)")
        lock = None if dry_run else held.enter_context(StudyLock(study_dir, what=f"--resume {study_dir}"))
        if lock is not None and not os.access(study_dir, os.W_OK | os.X_OK):
            from llem.study.lock import unwritable

            raise unwritable(f"--resume {study_dir}", study_dir, _why_unwritable(study_dir))
        prev = _load_previous(study_dir, rebuild_manifest=rebuild_manifest)
        from llem.study.manifest import _owner_alive

        if (lock is None or not lock.locked) and _owner_alive(prev.owner):
            # only where the OS lock is unavailable (a dry run, a file system without locks)
            raise ConfigError(f"--resume {study_dir}: the study is still running (pid {prev.owner.get('pid')}); "
                              "stop it first (Ctrl-C)")
        extra = parsed["overrides"]
        if search_flags:
            flag = next(iter(search_flags))
            raise ConfigError(f"--resume continues the search as it was planned; --{flag} cannot be changed "
                              "(allowed with --resume: hydra.launcher.* settings such as timeout_s)",
                              field=f"--{flag}", value=search_flags[flag], allowed="hydra.launcher.* settings")
        if prev.search:
            sp = prev.search
            search_flags = {"objective": list(sp.get("objectives") or []), "confirm": int(sp.get("confirm") or 0),
                            "constraint": [f"{c['metric']}{c['op']}{float(c['bound'])!r}" for c in sp.get("constraints") or []]}
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

    plan, info = plan_from_args(overrides, config_dir=config_dir, config_name=config_name, search_flags=search_flags,
                                previous=prev if resume and prev.search else None)
    if plan is None:
        print("llem: hydra/sweeper is not llem's: running Hydra's sweep without llem's manifest", file=sys.stderr)
        hydra_main(hydra_args)
        return 0
    search = info["search"]
    if dry_run:
        from llem.study.dryrun import print_dry_run, print_search_dry_run

        print_search_dry_run(plan) if search else print_dry_run(plan)
        return 0
    study_dir = study_dir if resume else info["sweep_dir"]
    if resume and search:
        if (code := _search_finished(study_dir, prev, quiet)) is not None:
            return code
    elif resume:
        _report_changes(prev, plan, quiet)
        if (done := _all_completed(study_dir, plan, quiet)) is not None:
            engine.LAST = done  # what resume_study() returns, as after a run
            return 0
    else:
        _claim_new_study_dir(study_dir, held)
    # the resolved directory replaces any hydra.sweep.dir given, so Hydra and the plan agree
    hydra_args = [a for a in hydra_args if not _key(a).startswith("hydra.sweep.dir")]
    if search:
        from llem.study.search_run import SearchRun as run_class
    else:
        run_class = engine.StudyRun
    run = run_class(plan=plan, study_dir=study_dir,
                    study_name=prev.study_name if prev else _study_name(info["sweeper"], study_dir),
                    launcher_name=info["launcher"], quiet=quiet, resume=bool(resume),
                    command_args=list(hydra_args),
                    config_dir=config_dir, config_name=config_name, live_url=live_url, live_token=live_token)
    if "-m" not in hydra_args and "--multirun" not in hydra_args:
        hydra_args = ["-m", *hydra_args]
    if not search:
        hydra_args = without_left_out_sections(hydra_args, overrides, plan)
    if search:
        from llem.study.search import LLEM_OPTUNA_SWEEPER

        # hydra-optuna-sweeper's own keys, sampler and loop, with each trial run as a llem study job
        hydra_args = [*hydra_args, f"hydra.sweeper._target_={LLEM_OPTUNA_SWEEPER}"]
        import logging

        # Optuna imports alembic, which logs every plugin it sets up at INFO through Hydra's console handler
        logging.getLogger("alembic").setLevel(logging.WARNING)
    engine.CURRENT = run
    try:
        hydra_main([*hydra_args, f"hydra.sweep.dir={_quote(str(study_dir))}"]
                   + (["hydra.verbose=false", "hydra/hydra_logging=none"] if quiet else []))
    finally:
        engine.CURRENT = None
    if run.error:
        print(f"llem: error: {run.error}", file=sys.stderr)
        return run.exit_code
    if run.result is None:
        raise RuntimeError("the study did not run (Hydra returned before the sweep)")
    return run.exit_code


def without_left_out_sections(hydra_args: list[str], overrides: list[str], plan) -> list[str]:
    """The arguments for Hydra without the overrides of a backend's section that some jobs leave
    out. Hydra composes its primary config with every override that is not a sweep before llem's
    sweeper runs the plan, and that config has one backend's section only (`backend=vllm,pytorch`
    is a sweep: the primary keeps the default backend), so `vllm.enforce_eager=true` would fail
    there. The plan holds them; each job is launched with its own overrides; ``command_args``
    (what a resume replans from) keeps them."""
    from llem.config.compose import backend_section, override_key

    left_out = {override_key(o) for p in plan.points for o in p.omitted}
    if not left_out:
        return hydra_args
    return [a for a in hydra_args if not (a in overrides and backend_section(a) and override_key(a) in left_out)]


def _claim_new_study_dir(study_dir: Path, held) -> None:
    """Create the new study's directory and lock it; refuse one that holds a study already."""
    from llem.study.lock import StudyLock
    from llem.results.manifest import MANIFEST_NAME, PLAN_NAME

    what = f"hydra.sweep.dir={study_dir}"
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{what}: cannot create it ({err.strerror}); choose a writable directory",
                          field="hydra.sweep.dir", value=str(study_dir), allowed="a writable directory") from None
    if not os.access(study_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: cannot write there ({_why_unwritable(study_dir)}); choose a writable directory",
                          field="hydra.sweep.dir", value=str(study_dir), allowed="a writable directory")
    held.enter_context(StudyLock(study_dir, what=what))
    if (study_dir / MANIFEST_NAME).exists() or (study_dir / PLAN_NAME).exists():
        raise ConfigError(f"{what} already holds a study; resume it with `llem run --resume {study_dir}` "
                          "or choose another hydra.sweep.dir")


def _why_unwritable(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    return "permission denied"


def _all_completed(study_dir: Path, plan, quiet: bool):
    """Resuming a study whose every job completed runs nothing and says so (the job directories
    decide, as for any resume). Returns the study's manifest then, else None."""
    from llem.study.manifest import rebuild

    m = rebuild(study_dir, save=False)
    status = {e.job_id: e.status for e in m.jobs}
    n = len(plan.jobs)
    if not n or any(status.get(j.job_id) != "completed" for j in plan.jobs):
        return None
    if m.finished_at is None:
        # a manifest just rebuilt (--rebuild-manifest) of a study whose jobs had all completed:
        # it is finished, and says so, as it would after the run that completed it
        from llem.study.manifest import _now

        m.finished_at = max((e.ended_at for e in m.jobs if e.ended_at), default=None) or _now()
        m.save(study_dir)
    if not quiet:
        from llem.study.progress import summary_table

        print(f"nothing to do: all {n} job{'s' if n != 1 else ''} completed ({study_dir})", flush=True)
        print(summary_table(m), flush=True)
    return m


def _search_finished(study_dir: Path, prev, quiet: bool) -> Optional[int]:
    """Resuming a search that ran to its end runs nothing and says so; returns its exit code
    then (0 when it named a configuration), else None."""
    if prev.finished_at is None:
        return None
    from llem.study import engine
    from llem.study.manifest import rebuild
    from llem.study.search import SearchRecord, summary_text

    m = rebuild(study_dir, save=False)
    engine.LAST = m
    try:
        rec = SearchRecord.load(study_dir)
    except Exception:
        rec = None
    if not quiet:
        from llem.study.progress import summary_table

        print(f"nothing to do: the search finished ({study_dir}); start another (a new hydra.sweep.dir) to search more",
              flush=True)
        print(summary_table(m), flush=True)
        if rec is not None:
            print(summary_text(rec), flush=True)
    return 0 if rec is not None and rec.best is not None else 1


def _strip_flag_values(args: list[str]) -> list[str]:
    from llem.cli.run import split_args

    return split_args(args)["overrides"]


def _load_previous(study_dir: Path, *, rebuild_manifest: bool = False):
    from llem.results.manifest import MANIFEST_NAME, PLAN_NAME, StudyResult
    from llem.study.manifest import _unreadable, rebuild

    path = study_dir / MANIFEST_NAME
    has_plan = (study_dir / PLAN_NAME).is_file()
    if rebuild_manifest:
        m = rebuild(study_dir, from_plan=True)  # ConfigError (one line) without a readable plan.json
        s = m.summary
        print(f"llem: rebuilt {path} from {PLAN_NAME} and the job directories: {s['completed']} completed, "
              f"{s['failed']} failed, {s['lost']} lost, {s['pending']} pending", file=sys.stderr)
        return m
    rebuild_hint = (f"rebuild it from {PLAN_NAME} and the job directories with "
                    f"`llem run --resume {study_dir} --rebuild-manifest`")
    if not path.is_file():
        if has_plan:
            raise ConfigError(f"--resume {study_dir}: {MANIFEST_NAME} is missing; {rebuild_hint}")
        raise ConfigError(f"--resume {study_dir}: no {MANIFEST_NAME} there; give the study directory "
                          "(multirun/<date>/<time> or the hydra.sweep.dir it ran with)")
    try:
        return StudyResult.load(path)
    except Exception as err:
        hint = rebuild_hint if has_plan else (
            f"there is no {PLAN_NAME} to rebuild it from (the study was started by an older llem); "
            f"its results stay readable with `llem results show {study_dir}/<job>`")
        raise ConfigError(f"--resume {study_dir}: {MANIFEST_NAME} cannot be read ({_unreadable(err)}); {hint}") from None


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
