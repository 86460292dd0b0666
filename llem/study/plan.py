"""Plan a study: expand the sweep grid, compose and validate every job, order them.

Every job is validated before anything is written, so one bad grid point stops the study
with exit code 2 and no directory.

Speed: a full Hydra compose costs ~50-100 ms. Jobs differ mostly in plain values
(``batch=8``, ``pytorch.top_k=5``), so Hydra composes once per unique combination of
config-group choices (``backend=``, ``model=``, ...) and the plain value overrides are applied
to a copy of that composition. On a plain dict when that is provably the same as Hydra's own
override step (the key exists, the value is a scalar, the config has no interpolations),
else with Hydra's own override code on an OmegaConf copy.

The combinations themselves grow with the product of the group choices (5 models x 2
precisions: 10). Where each group's options write top-level keys that nothing else in the
defaults list writes, a combination is the first combination of the grid with each changed
group's keys taken from a compose that changes that group alone: Hydra composes grow with the
sum (1 + 4 + 1 = 6). Whatever cannot be shown to give the same config falls back to a full
compose (see ``GridComposer._combined``). tests/study/test_plan.py checks every path against
full composes, key order included, and the config_hash.
"""
from __future__ import annotations

import copy
import itertools
import random
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from llem.config.schema import ExperimentConfig
from llem.config.compose import compose_errors, to_plain, validate
from llem.config.hashing import sha256_of_text
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
    #: overrides of the grid left out of this job: they set another backend's own section
    #: (``vllm.enforce_eager=true`` in a ``backend=vllm,pytorch`` grid, for the PyTorch jobs)
    omitted: list[str] = field(default_factory=list)


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

    @property
    def omitted_overrides(self) -> list[str]:
        return self.point.omitted

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
    #: each argument of the grid that sets a backend's own section, as typed -> that backend
    #: (its jobs take it; the other backends' jobs leave it out)
    backend_only: dict[str, str] = field(default_factory=dict)
    #: combinations of the sweep that were the same job as an earlier one once another backend's
    #: section was left out (planned once)
    merged_points: int = 0

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
        self._choices: dict[tuple[str, ...], Optional[tuple[tuple[str, str], ...]]] = {}
        #: per tuple of chosen groups: the first combination composed, which the others start from
        self._firsts: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.full_composes = 0
        #: combinations built from single-group composes instead of a full compose of their own
        self.combined = 0

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
            hit = self._combined(structural)
            if hit is None:
                cfg, plain, entries = self._compose_full(list(structural), record=True)
                hit = _Base(cfg, plain, entries)
            self._bases[structural] = hit
        return hit

    def _group_choices(self, structural: tuple[str, ...]) -> Optional[tuple[tuple[str, str], ...]]:
        """((group, option), ...) when every override is a plain choice of a config group
        (``model=tiny``: no ``+``/``~``, no ``@package``, one option, each group once), else None."""
        if structural in self._choices:
            return self._choices[structural]
        from hydra.core.override_parser.types import OverrideType

        out: Optional[list[tuple[str, str]]] = []
        for text in structural:
            o = self._parse(text)
            v = o.value() if o.type == OverrideType.CHANGE and not o.is_sweep_override() else None
            if o.type != OverrideType.CHANGE or o.package is not None or not isinstance(v, str) \
                    or not self._is_group(o.key_or_group) or any(g == o.key_or_group for g, _ in out):
                out = None
                break
            out.append((o.key_or_group, v))
        hit = self._choices[structural] = None if out is None else tuple(out)
        return hit

    def _combined(self, structural: tuple[str, ...]) -> Optional["_Base"]:
        """This combination of group choices without a compose of its own, or None (then a full
        compose) where that cannot be shown to give exactly what the full compose gives.

        Hydra composes a config by merging the configs of its defaults list in order. Take the
        first combination composed with these groups (F) and, for each group this one chooses
        differently, F with that group alone changed (V_g). If each V_g's defaults list is F's
        with only that group's entry swapped, and the top-level keys that entry writes (under F's
        option or V_g's) are written by no other entry and by no other changed group, then every
        top-level key of the full compose has a single source: V_g for the keys of a changed
        group g, F for the rest. Anything else falls back: an option with its own defaults
        list, an interpolated or ``optional`` entry that follows another group's choice, an
        option writing a key another config writes (a ``_global_`` package, or one that is not
        its group), interpolations anywhere, a compose that fails (the full compose then gives
        Hydra's own error)."""
        choices = self._group_choices(structural)
        if choices is None:
            return None
        groups = tuple(g for g, _ in choices)
        first = self._firsts.setdefault(groups, structural)
        changed = [i for i, (_, opt) in enumerate(choices) if opt != self._group_choices(first)[i][1]]
        if len(changed) < 2:
            return None  # the first combination itself, or a single-group change: composed in full
        f = self._bases.get(first)
        if f is None or f.entries is None or f.plain is None:
            return None
        variants = []
        for i in changed:
            one = first[:i] + (structural[i],) + first[i + 1:]
            try:
                v = self._base(one)
            except ConfigError:
                return None
            if v.entries is None or v.plain is None or len(v.entries) != len(f.entries):
                return None
            swapped = [j for j, (a, b) in enumerate(zip(f.entries, v.entries)) if a != b]
            group = choices[i][0] + "/"
            if len(swapped) != 1 or not (f.entries[swapped[0]][0] or "").startswith(group) \
                    or not (v.entries[swapped[0]][0] or "").startswith(group):
                return None
            j = swapped[0]
            keys = (set(f.entries[j][2]) | set(v.entries[j][2])) - {"hydra"}  # the plan drops hydra
            variants.append((j, keys, v))
        slots = {j for j, _, _ in variants}
        if len(slots) != len(variants):
            return None
        for n, (j, keys, v) in enumerate(variants):
            if any(keys & set(e[2]) for k, e in enumerate(f.entries) if k not in slots):
                return None
            if any(keys & other for _, other, _ in variants[n + 1:]):
                return None
        # The composed keys, in order, are the entries' keys, first writer first (Hydra's merge
        # appends a new key, updates an existing one in place): checked on F and every V_g
        if any(_merged_keys(b.entries) != list(b.plain) for b in (f, *(v for _, _, v in variants))):
            return None
        source: dict[str, dict] = {}
        entries = list(f.entries)
        for j, keys, v in variants:
            source.update(dict.fromkeys(keys, v.plain))
            entries[j] = v.entries[j]
        plain = {}
        for k in _merged_keys(entries):
            src = source.get(k, f.plain)
            if k not in src:
                return None
            plain[k] = src[k]
        self.combined += 1
        return _Base(None, plain, None, compose=lambda: self._compose_full(list(structural))[0])

    def _compose_full(self, overrides: list[str], record: bool = False):
        """(DictConfig without its hydra node, its plain dict or None where it has
        interpolations, and with ``record`` the defaults list as merged: one (config path,
        package, top-level keys it writes) per entry, or None where that could not be seen)."""
        from hydra.types import RunMode
        from omegaconf import DictConfig, OmegaConf, open_dict

        from llem.config.compose import format_hydra_error

        self.full_composes += 1
        # Hydra's own logging configs are large and the plan drops the hydra node: composing
        # without them is a quarter faster and leaves the job's config unchanged
        given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
        overrides = overrides + [o for o in _PLANNING_ONLY if o.split("=", 1)[0] not in given]
        # What each entry of the defaults list writes, seen where Hydra loads it for the merge
        # (its package applied). Only for this compose: the loader may be a running app's.
        entries: Optional[list] = [] if record else None
        own = vars(self.loader)
        had, before = "_load_single_config" in own, own.get("_load_single_config")
        load_single = getattr(self.loader, "_load_single_config", None) if record else None
        if load_single is not None:
            def recording(default, repo):
                res = load_single(default=default, repo=repo)
                if entries is not None:
                    c = res.config
                    entries.append((default.config_path, default.package,
                                    tuple(c.keys()) if isinstance(c, DictConfig) and not c._is_missing()
                                    and not c._is_none() else None))
                return res

            self.loader._load_single_config = recording
        try:
            cfg = self.loader.load_configuration(self.config_name, overrides, run_mode=RunMode.RUN, from_shell=False)
        except compose_errors() as err:
            raise ConfigError(format_hydra_error(err, self.config_dir)) from None
        finally:
            if load_single is not None:
                if had:
                    self.loader._load_single_config = before
                else:
                    del self.loader._load_single_config
        with open_dict(cfg):
            cfg.pop("hydra", None)
        plain = None
        container = OmegaConf.to_container(cfg, resolve=False)
        if not _has_interpolation(container):
            plain = container
        if load_single is None or not entries or any(e[2] is None for e in entries):
            entries = None
        return cfg, plain, (tuple(entries) if entries else None)

    def compose(self, overrides: list[str]) -> ExperimentConfig:
        return self.compose_hashed(overrides)[0]

    def backend_of(self, overrides: list[str]) -> Optional[str]:
        """The backend a job's overrides choose, read from the composition of its config-group
        choices (cached: the job's own compose starts from the same one), or None where the
        config has no ``backend`` key."""
        from hydra.core.override_parser.types import OverrideType

        structural = []
        for t in overrides:
            o, is_structural = self._info(t)
            if is_structural:
                structural.append(t)
            elif o.key_or_group == "backend" and o.type == OverrideType.CHANGE and isinstance(o.value(), str):
                return o.value()  # a config tree whose `backend` is a plain key, not a group
        base = self._base(tuple(structural))
        value = (base.plain if base.plain is not None else base.cfg).get("backend")
        return value if isinstance(value, str) else None

    def compose_hashed(self, overrides: list[str]) -> tuple[ExperimentConfig, str]:
        """The job's config and its config_hash."""
        try:
            return self._compose_hashed(overrides)
        except ConfigError:
            other = self._other_backend_error(overrides)
            if other is not None:
                raise other from None
            raise

    def _other_backend_error(self, overrides: list[str]) -> Optional[ConfigError]:
        """For a job that failed: the line for an override of another backend's section than the
        job's (a search's trial; a grid leaves those out before composing), else None."""
        from llem.config.compose import backend_section, other_backend_message, override_key

        sections = [o for o in overrides if backend_section(o)]
        if not sections:
            return None
        try:
            backend = self.backend_of(overrides)
        except ConfigError:
            return None
        for o in sections:
            if backend is not None and backend_section(o) != backend:
                return ConfigError(other_backend_message(o, [backend], "this job"), field=override_key(o),
                                   value=o.split("=", 1)[1] if "=" in o else None,
                                   allowed=f"with backend={backend_section(o)}")
        return None

    def _compose_hashed(self, overrides: list[str]) -> tuple[ExperimentConfig, str]:
        info = [self._info(t) for t in overrides]
        structural = tuple(t for t, (_, is_structural) in zip(overrides, info) if is_structural)
        values = [o for o, is_structural in info if not is_structural]
        base = self._base(structural)
        if base.plain is not None and all(base.plain_ok(o, self._plain_ok) for o in values) \
                and base.fills_missing(values):
            # Sections no override touches are the base's validated instances: pydantic takes an
            # instance of the field's model as it is, so only what changed is validated again
            # (a section's validation never depends on its siblings; the whole config's cross
            # checks still run). tests/study/test_plan.py checks the result against a full compose.
            data = dict(base.template())
            touched = set()
            for o in values:
                key, value = self._scalar(o)
                top, dot, _ = key.partition(".")
                if not dot:
                    data[key] = value  # an existing scalar leaf (plain_ok), never a section
                    continue
                if top not in touched:
                    touched.add(top)
                    data[top] = base.plain[top]
                _set_path(data, key, value)
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
        if isinstance(v, str) and ("${" in v or v == "???"):
            return False  # an interpolation, or OmegaConf's mark of a missing value
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
        cfg = self._compose_full(list(overrides))[0]
        return validate(to_plain(cfg))


class _Base:
    """One Hydra composition (a combination of config-group choices) that many jobs start from."""

    def __init__(self, cfg, plain: Optional[dict], entries: Optional[tuple] = None, compose=None) -> None:
        self._cfg, self.plain, self.entries, self._compose = cfg, plain, entries, compose
        self._sections: Optional[dict[str, tuple[Any, str]]] = None
        self._template: Optional[dict] = None
        self._missing: Optional[frozenset[str]] = None
        self._plain_ok: dict[str, bool] = {}

    def fills_missing(self, values) -> bool:
        """Whether these overrides set every value the config marks missing (``???``, kept as
        that string in the plain dict): else the job takes Hydra's own path, which names the
        first missing one."""
        if self._missing is None:
            self._missing = frozenset(_missing_paths(self.plain)) if self.plain is not None else frozenset()
        return not self._missing or self._missing <= {o.key_or_group for o in values}

    def template(self) -> dict:
        """The plain dict with each validated section in place of its plain value."""
        if self._template is None:
            self._template = {**self.plain, **{k: inst for k, (inst, _) in self.sections().items()}}
        return self._template

    @property
    def cfg(self):
        """The DictConfig; a combination built without a compose of its own composes it the
        first time a job needs Hydra's own override code."""
        if self._cfg is None:
            self._cfg = self._compose()
        return self._cfg

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


def _merged_keys(entries) -> list[str]:
    """The top-level keys a merge of these defaults-list entries leaves, in order (the plan
    drops ``hydra``)."""
    return list(dict.fromkeys(k for e in entries for k in e[2] if k != "hydra"))


def _missing_paths(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the values OmegaConf marks missing (``???``) in a plain dict."""
    out = []
    for k, v in node.items():
        if isinstance(v, dict):
            out += _missing_paths(v, f"{prefix}{k}.")
        elif (isinstance(v, str) and v == "???") or (isinstance(v, list) and _has_missing_item(v)):
            out.append(f"{prefix}{k}")  # a list's missing item: no override here can fill it
    return out


def _has_missing_item(node: Any) -> bool:
    if isinstance(node, str):
        return node == "???"
    if isinstance(node, dict):
        return any(_has_missing_item(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_missing_item(v) for v in node)
    return False


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
    naming the job and its overrides.

    An override of a backend's own section (``vllm.*``, ``pytorch.*``, ``tensorrt.*``) applies to
    the jobs of that backend and is left out of the others' (their overrides, config and
    config_hash are those of the grid without it; ``GridPoint.omitted`` records it). Points
    that become identical that way are one job (``backend=vllm,pytorch vllm.max_num_seqs=8,16``:
    two vLLM jobs, one PyTorch job). A section whose backend no job of the grid has is refused."""
    from llem.config.compose import backend_section, override_key

    grid = expand_grid(arguments, composer.parser)
    if not grid:
        raise ConfigError("the sweep is empty: give at least one value per swept key")
    # the last argument of a key is the one that counts, as in expand_grid
    backend_only = {override_key(a): a for a in arguments if backend_section(a)}
    rows: list[tuple[list[str], list[str]]] = [(ovr, []) for ovr in grid]
    with collector_paused():
        if backend_only:
            rows = _split_backend_sections(grid, composer, backend_only)
        points: list[GridPoint] = []
        seen: dict[tuple[str, ...], GridPoint] = {}
        for ovr, omitted in rows:
            i = len(points)
            if omitted and tuple(ovr) in seen:
                # the same job as an earlier point once the other backend's keys are left out
                same = seen[tuple(ovr)]
                same.omitted += [o for o in omitted if o not in same.omitted]
                continue
            try:
                cfg, chash = composer.compose_hashed(ovr)
            except ConfigError as err:
                shown = " ".join(ovr) or "(no overrides)"
                raise ConfigError(f"job {i} ({shown}): {err}") from None
            points.append(GridPoint(grid_index=i, overrides=ovr, config=cfg, config_hash=chash, omitted=omitted))
            if backend_only:
                seen.setdefault(tuple(ovr), points[-1])
        jobs = order_jobs(points, execution)
    return StudyPlan(points=points, jobs=jobs, execution=execution, sweep_overrides=list(arguments),
                     backend_only={a: backend_section(a) for a in backend_only.values()},
                     merged_points=len(rows) - len(points))


def _split_backend_sections(grid: list[list[str]], composer: GridComposer,
                            backend_only: dict[str, str]) -> list[tuple[list[str], list[str]]]:
    """Each grid point's overrides without the other backends' sections, and those left out.
    Refuses a section that no point's backend takes (one line: the override, the grid's backends)."""
    from llem.config.compose import backend_section, other_backend_message, override_key

    rows, backends = [], set()
    for i, ovr in enumerate(grid):
        try:
            backend = composer.backend_of(ovr)
        except ConfigError as err:
            raise ConfigError(f"job {i} ({' '.join(ovr) or '(no overrides)'}): {err}") from None
        if backend is None:
            rows.append((ovr, []))  # a config tree without `backend`: validation decides
            continue
        backends.add(backend)
        kept = [o for o in ovr if backend_section(o) in (None, backend)]
        rows.append((kept, [o for o in ovr if backend_section(o) not in (None, backend)]))
    for key, arg in backend_only.items():
        if backends and backend_section(arg) not in backends:
            raise ConfigError(other_backend_message(arg, backends, "this grid"), field=key,
                              value=arg.split("=", 1)[1] if "=" in arg else None,
                              allowed=f"with backend={backend_section(arg)} in the grid")
    return rows


@contextmanager
def collector_paused():
    """Planning (and a dry run's table) allocates only what it keeps: the cyclic collector would
    rescan the growing heap again and again for nothing (a tenth of a 10,000-job plan, 60 ms
    of its dry run's table). Paused, never left off."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
