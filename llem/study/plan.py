"""Plan a study: expand the sweep grid, compose and validate every job, order them.

Every job is validated before anything is written, so one bad grid point stops the study
with exit code 2 and no directory.

Speed: a full Hydra compose costs ~70-100 ms. Jobs differ mostly in plain values
(``batch=8``, ``pytorch.top_k=5``), so Hydra composes once per unique combination of
config-group choices (``backend=``, ``model=``, ...) and the plain value overrides are applied
to a copy of that composition. On a plain dict when that is provably the same as Hydra's own
override step (the key exists, the value is a scalar, the config has no interpolations),
else with Hydra's own override code on an OmegaConf copy. tests/study/test_plan.py checks
that both give the same config_hash as a full compose.
"""
from __future__ import annotations

import copy
import itertools
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from llem.config.schema import ExperimentConfig
from llem.config.compose import compose_errors
from llem.errors import ConfigError

ORDERS = ("sequential", "interleaved", "shuffled")


@dataclass
class ExecutionOptions:
    """How the grid is run. Not part of any config_hash: they do not change what one job
    measures, only when it runs; they are part of the study_design_hash."""

    grid_cycles: int = 1
    order: str = "sequential"
    shuffle_seed: int = 0
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.grid_cycles, int) or self.grid_cycles < 1:
            raise ConfigError(f"hydra.sweeper.grid_cycles={self.grid_cycles!r} is not allowed; allowed: an integer >= 1")
        if self.order not in ORDERS:
            raise ConfigError(f"hydra.sweeper.order={self.order!r} is not allowed; allowed: {', '.join(ORDERS)}")
        try:
            self.cooldown_s = float(self.cooldown_s)
        except (TypeError, ValueError):
            raise ConfigError(f"hydra.sweeper.cooldown_s={self.cooldown_s!r} is not allowed; allowed: seconds >= 0") from None
        if self.cooldown_s < 0:
            raise ConfigError(f"hydra.sweeper.cooldown_s={self.cooldown_s!r} is not allowed; allowed: seconds >= 0")
        if not isinstance(self.shuffle_seed, int):
            raise ConfigError(f"hydra.sweeper.shuffle_seed={self.shuffle_seed!r} is not allowed; allowed: an integer")

    def as_dict(self) -> dict[str, Any]:
        return {"grid_cycles": self.grid_cycles, "order": self.order, "shuffle_seed": self.shuffle_seed,
                "cooldown_s": self.cooldown_s}


@dataclass
class GridPoint:
    grid_index: int
    overrides: list[str]
    config: ExperimentConfig
    config_hash: str


@dataclass
class PlannedJob:
    job_id: str
    index: int          # position in the execution order (Hydra's job.num)
    point: GridPoint
    cycle: int = 0

    @property
    def overrides(self) -> list[str]:
        return self.point.overrides

    @property
    def config(self) -> ExperimentConfig:
        return self.point.config

    @property
    def config_hash(self) -> str:
        return self.point.config_hash

    def launch_overrides(self) -> list[str]:
        # The job directory is named by job_id, so resume and rebuild find it by name. Quoted:
        # Hydra would read a bare 0003 as a number.
        return [*self.overrides, f"hydra.sweep.subdir='{self.job_id}'"]


@dataclass
class StudyPlan:
    points: list[GridPoint]
    jobs: list[PlannedJob]
    execution: ExecutionOptions
    sweep_overrides: list[str] = field(default_factory=list)

    @property
    def study_design_hash(self) -> str:
        return design_hash([p.config_hash for p in self.points], self.execution)


def design_hash(config_hashes: Iterable[str], execution: ExecutionOptions | dict) -> str:
    from llem.config.hashing import sha256_of

    ex = execution.as_dict() if isinstance(execution, ExecutionOptions) else dict(execution)
    return sha256_of({"config_hashes": sorted(config_hashes),
                      "execution": {k: ex.get(k) for k in ("grid_cycles", "order", "shuffle_seed", "cooldown_s")}})


# --- grid expansion ------------------------------------------------------------------------

def expand_grid(arguments: list[str], parser=None) -> list[list[str]]:
    """Hydra's sweep syntax (``a=1,2``, ``range(1,4)``, ``choice(...)``, ``glob(...)``) to the
    list of jobs, each a list of plain overrides, in Hydra's BasicSweeper order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = parser or OverridesParser.create()
    try:
        parsed = parser.parse_overrides(list(arguments))
    except compose_errors() as err:
        from llem.config.compose import format_hydra_error

        raise ConfigError(format_hydra_error(err)) from None
    axes: "OrderedDict[str, list[str]]" = OrderedDict()
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise ConfigError(f"{o.input_line}: interval sweeps cannot be enumerated into a grid; "
                                  "allowed: a,b,c  range(start,stop,step)  choice(...)  glob(...)")
            axes[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            axes[key] = [o.input_line]  # as typed (Hydra would re-render false as False)
    return [list(x) for x in itertools.product(*axes.values())]


# --- composition ---------------------------------------------------------------------------

#: added to every compose of the planner (unless the grid sets them): the plan drops the hydra node
_PLANNING_ONLY = ("hydra/job_logging=none", "hydra/hydra_logging=none")


class GridComposer:
    """Compose many jobs fast, with Hydra's semantics.

    ``config_loader`` is Hydra's (``GlobalHydra.instance().config_loader()`` outside a run,
    ``hydra_context.config_loader`` inside the sweeper).
    """

    def __init__(self, config_loader, config_name: str = "config", config_dir: Optional[str] = None) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.loader = config_loader
        self.config_name = config_name
        self.config_dir = config_dir
        self.parser = OverridesParser.create(config_loader=config_loader)
        self._parsed: dict[str, Any] = {}
        self._bases: dict[tuple[str, ...], tuple[Any, Optional[dict]]] = {}
        self._groups: dict[str, bool] = {}
        self._infos: dict[str, tuple[Any, bool]] = {}
        self._scalars: dict[str, tuple[str, Any]] = {}
        self.full_composes = 0

    def _parse(self, text: str):
        o = self._parsed.get(text)
        if o is None:
            try:
                o = self.parser.parse_overrides([text])[0]
            except compose_errors() as err:
                from llem.config.compose import format_hydra_error

                raise ConfigError(format_hydra_error(err, self.config_dir)) from None
            self._parsed[text] = o
        return o

    def _info(self, text: str):
        """(parsed override, whether it is structural), once per distinct override text."""
        hit = self._infos.get(text)
        if hit is None:
            o = self._parse(text)
            hit = self._infos[text] = (o, self._structural(o))
        return hit

    def _scalar(self, o) -> tuple[str, Any]:
        # (key, value) of a plain override; the value is a scalar, safe to share between jobs
        hit = self._scalars.get(o.input_line)
        if hit is None:
            hit = self._scalars[o.input_line] = (o.key_or_group, o.value())
        return hit

    def _is_group(self, key: str) -> bool:
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = bool(self.loader.repository.group_exists(key))
        return g

    def _structural(self, o) -> bool:
        # What Hydra's defaults list consumes (config-group choices) needs a real compose;
        # everything else is applied to the composed config by _apply_overrides_to_config.
        return o.package is not None or (self._is_group(o.key_or_group) and not isinstance(o.value(), dict))

    def _base(self, structural: tuple[str, ...]) -> "_Base":
        hit = self._bases.get(structural)
        if hit is None:
            hit = self._bases[structural] = _Base(*self._compose_full(list(structural)))
        return hit

    def _compose_full(self, overrides: list[str]):
        from hydra.types import RunMode
        from omegaconf import OmegaConf, open_dict

        from llem.config.compose import format_hydra_error

        self.full_composes += 1
        # Hydra's own logging configs are large and the plan drops the hydra node: composing
        # without them is a quarter faster and leaves the job's config unchanged
        given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
        overrides = overrides + [o for o in _PLANNING_ONLY if o.split("=", 1)[0] not in given]
        try:
            cfg = self.loader.load_configuration(self.config_name, overrides, run_mode=RunMode.RUN, from_shell=False)
        except compose_errors() as err:
            raise ConfigError(format_hydra_error(err, self.config_dir)) from None
        with open_dict(cfg):
            cfg.pop("hydra", None)
        plain = None
        container = OmegaConf.to_container(cfg, resolve=False)
        if not _has_interpolation(container):
            plain = container
        return cfg, plain

    def compose(self, overrides: list[str]) -> ExperimentConfig:
        return self.compose_hashed(overrides)[0]

    def compose_hashed(self, overrides: list[str]) -> tuple[ExperimentConfig, str]:
        """The job's config and its config_hash."""
        from llem.config.compose import to_plain, validate
        from llem.config.hashing import sha256_of_text

        info = [self._info(t) for t in overrides]
        structural = tuple(t for t, (_, is_structural) in zip(overrides, info) if is_structural)
        values = [o for o, is_structural in info if not is_structural]
        base = self._base(structural)
        if base.plain is not None and all(base.plain_ok(o, self._plain_ok) for o in values):
            data = dict(base.plain)
            touched = set()
            for o in values:
                key, value = self._scalar(o)
                _set_path(data, key, value)
                touched.add(key.split(".", 1)[0])
            # Sections no override touches are the base's validated instances: pydantic takes an
            # instance of the field's model as it is, so only what changed is validated again
            # (a section's validation never depends on its siblings; the whole config's cross
            # checks still run). tests/study/test_plan.py checks the result against a full compose.
            data.update({k: inst for k, (inst, _) in base.sections().items() if k not in touched})
            config = validate(data)
            return config, sha256_of_text(config.semantic_json(base.sections()))
        config = validate(to_plain(self._apply(base.cfg, values)))
        return config, config.config_hash

    def _apply(self, cfg, values):
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        from llem.config.compose import format_hydra_error

        cfg = copy.deepcopy(cfg)
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except compose_errors() as err:
            raise ConfigError(format_hydra_error(err, self.config_dir)) from None
        return cfg

    @staticmethod
    def _plain_ok(o, plain: dict) -> bool:
        from hydra.core.override_parser.types import OverrideType

        if o.type != OverrideType.CHANGE or o.is_hydra_override():
            return False
        v = o.value()
        if not (v is None or isinstance(v, (str, int, float, bool))):
            return False
        if isinstance(v, str) and "${" in v:
            return False
        node: Any = plain
        parts = o.key_or_group.split(".")
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                return False
            node = node[p]
        # an existing scalar leaf: Hydra's struct-mode update is a plain assignment there
        return isinstance(node, dict) and parts[-1] in node and not isinstance(node[parts[-1]], (dict, list))

    def compose_full(self, overrides: list[str]) -> ExperimentConfig:
        """The slow reference path: one Hydra compose for this job alone."""
        from llem.config.compose import to_plain, validate

        cfg, _ = self._compose_full(list(overrides))
        return validate(to_plain(cfg))


class _Base:
    """One Hydra composition (a combination of config-group choices) that many jobs start from."""

    def __init__(self, cfg, plain: Optional[dict]) -> None:
        self.cfg, self.plain = cfg, plain
        self._sections: Optional[dict[str, tuple[Any, str]]] = None
        self._plain_ok: dict[str, bool] = {}

    def plain_ok(self, o, check) -> bool:
        """``check(o, self.plain)``, once per distinct override text."""
        hit = self._plain_ok.get(o.input_line)
        if hit is None:
            hit = self._plain_ok[o.input_line] = check(o, self.plain)
        return hit

    def sections(self) -> dict[str, tuple[Any, str]]:
        """Each model-valued field of the validated base, with its canonical JSON; empty when
        the base alone is not a valid config (the jobs' overrides may be what makes it valid)."""
        if self._sections is None:
            from pydantic import BaseModel

            from llem.config.compose import validate
            from llem.config.hashing import canonical_json

            self._sections = {}
            if self.plain is not None:
                try:
                    config = validate(dict(self.plain))
                except ConfigError:
                    return self._sections
                for k in type(config).model_fields:
                    v = getattr(config, k)
                    if isinstance(v, BaseModel):
                        self._sections[k] = (v, canonical_json(v.model_dump(mode="json")))
        return self._sections


def _has_interpolation(node: Any) -> bool:
    if isinstance(node, str):
        return "${" in node
    if isinstance(node, dict):
        return any(_has_interpolation(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_interpolation(v) for v in node)
    return False


def _set_path(data: dict, dotted: str, value: Any) -> None:
    """Set a dotted key, copying only the dicts on its path: the rest stays shared with the
    cached base (validation never mutates its input), which keeps 1,000 jobs cheap."""
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        node[p] = dict(node[p])
        node = node[p]
    node[parts[-1]] = value


# --- the plan ------------------------------------------------------------------------------

def job_id_for(grid_index: int, cycle: int, grid_cycles: int, width: int = 4) -> str:
    base = f"{grid_index:0{width}d}"
    return base if grid_cycles == 1 else f"{base}_c{cycle}"


def order_jobs(points: list[GridPoint], ex: ExecutionOptions) -> list[PlannedJob]:
    n = len(points)
    width = max(4, len(str(n - 1)))
    if ex.order == "sequential":
        # every grid cycle of a config back to back
        pairs = [(i, c) for i in range(n) for c in range(ex.grid_cycles)]
    else:
        # the whole grid once per cycle: slow drift (temperature, clocks) spreads over all configs
        pairs = [(i, c) for c in range(ex.grid_cycles) for i in range(n)]
        if ex.order == "shuffled":
            random.Random(ex.shuffle_seed).shuffle(pairs)
    return [PlannedJob(job_id=job_id_for(i, c, ex.grid_cycles, width), index=k, point=points[i], cycle=c)
            for k, (i, c) in enumerate(pairs)]


def plan_grid(arguments: list[str], composer: GridComposer, execution: ExecutionOptions) -> StudyPlan:
    """Expand, compose and validate every job. The first invalid job raises ``ConfigError``
    naming the job and its overrides."""
    import gc

    grid = expand_grid(arguments, composer.parser)
    if not grid:
        raise ConfigError("the sweep is empty: give at least one value per swept key")
    points = []
    # Planning allocates only what the plan keeps: the cyclic collector would rescan the growing
    # heap again and again for nothing (about a tenth of a 10,000-job plan). Paused, never left off.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, ovr in enumerate(grid):
            try:
                cfg, chash = composer.compose_hashed(ovr)
            except ConfigError as err:
                shown = " ".join(ovr) or "(no overrides)"
                raise ConfigError(f"job {i} ({shown}): {err}") from None
            points.append(GridPoint(grid_index=i, overrides=ovr, config=cfg, config_hash=chash))
    finally:
        if was_enabled:
            gc.enable()
    return StudyPlan(points=points, jobs=order_jobs(points, execution), execution=execution,
                     sweep_overrides=list(arguments))


def check_runners(plan: StudyPlan) -> dict[str, dict]:
    """Every backend of the grid must be able to run somewhere before the first job starts."""
    from llem.runners import resolve_runner

    seen: dict[tuple[str, str], dict] = {}
    for p in plan.points:
        key = (p.config.backend, getattr(p.config.runner, p.config.backend))
        if key not in seen:
            seen[key] = resolve_runner(*key).describe()
    return {f"{b}:{s}": d for (b, s), d in seen.items()}


def _cache_file_loads(repo) -> None:
    """Parse each YAML file of the config tree once per planning, not once per compose.

    Hydra re-reads and re-parses every file on each compose (a third of its cost). The tree
    does not change while a grid is planned; a deep copy of the parsed result goes out each
    time, so composition can never alter the cached one. Only for this planning's
    own GlobalHydra (cleared on exit), never for a running Hydra app.
    """
    original = repo.load_config
    cache: dict[str, Any] = {}

    def load_config(config_path: str):
        if config_path not in cache:
            cache[config_path] = original(config_path)
        hit = cache[config_path]
        return None if hit is None else copy.deepcopy(hit)

    repo.load_config = load_config


class standalone_composer:
    """``with standalone_composer(config_dir) as composer:`` outside a running Hydra app."""

    def __init__(self, config_dir: str | Path | None = None, config_name: str = "config") -> None:
        from llem.config.compose import conf_dir

        self.config_dir = str(Path(config_dir).resolve()) if config_dir else str(conf_dir())
        self.config_name = config_name
        self._ctx = None

    def __enter__(self) -> GridComposer:
        from hydra import initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        self._ctx = initialize_config_dir(config_dir=self.config_dir, version_base=None, job_name="llem")
        self._ctx.__enter__()
        loader = GlobalHydra.instance().config_loader()
        _cache_file_loads(loader.repository)
        return GridComposer(loader, self.config_name, self.config_dir)

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
