"""A search for the best configuration (``llem run -m hydra/sweeper=optuna``): what it optimises
and how its trials are judged. docs/search.md says it for users.

Here lives everything that needs no sampler: the objectives and constraints the user names
(checked against llem's metric vocabulary), the search space (checked before anything runs, as a
grid's jobs are), how one trial's ``result.json`` becomes the value(s) told to the sampler, the
Pareto front, the candidates a ``--confirm K`` re-measures, the choice of the best, and
``search.json``, the record written beside ``manifest.json``. Running the trials is
``llem.study.search_run``; the sampler is hydra-optuna-sweeper's (``hydra_plugins.llem_plugins``).
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict

from llem.errors import ConfigError
from llem.result import ExperimentResult
from llem.results.manifest import JsonFile

SEARCH_NAME = "search.json"
# the hydra-optuna-sweeper class a search is recognised by, and llem's subclass that replaces it
OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
LLEM_OPTUNA_SWEEPER = "hydra_plugins.llem_plugins.search.LlemOptunaSweeper"
DEFAULT_OBJECTIVE = "energy_per_output_token_j"

# metrics with a 95% CI over the measured cycles (result.stats), and whether higher is better
_CI_METRICS = {"energy_per_output_token_j": False, "energy_adjusted_per_output_token_j": False,
               "tokens_per_joule": True, "output_tokens_per_s": True}
_LATENCY = ("ttft_ms", "itl_ms", "itl_trimmed_ms", "tpot_ms", "e2e_latency_ms")
_LATENCY_STATS = ("mean", "p50", "p90", "p95", "p99")
# every metric a search may optimise or constrain -> higher is better
METRICS: dict[str, bool] = {**_CI_METRICS, **{f"{m}_{s}": False for m in _LATENCY for s in _LATENCY_STATS}}
ALLOWED_TEXT = (", ".join(_CI_METRICS) + " or a latency percentile <" + "|".join(_LATENCY) + ">_<"
                + "|".join(_LATENCY_STATS) + "> (e.g. itl_ms_p99)")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
# a trial that ended this way was cut short by the study stopping, not by its own outcome: a
# resume runs it again (every other recorded outcome, a failure included, is part of the search)
INTERRUPTED_ERRORS = ("Lost", "Interrupted", "StudyStopped")


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, list(METRICS), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def direction(metric: str) -> str:
    return "maximize" if METRICS[metric] else "minimize"


def parse_objectives(values: list[str]) -> list[str]:
    """``--objective`` values (repeated or comma-separated) -> metric names, checked."""
    names = [v.strip() for raw in values for v in str(raw).split(",")] if values else [DEFAULT_OBJECTIVE]
    seen: list[str] = []
    for n in names:
        if n not in METRICS:
            raise ConfigError(f"--objective={n}: not a metric a search can optimise{_did_you_mean(n)}; "
                              f"allowed: {ALLOWED_TEXT}", field="--objective", value=n, allowed=sorted(METRICS))
        if n in seen:
            raise ConfigError(f"--objective={n}: named twice; allowed: each metric once",
                              field="--objective", value=n, allowed="distinct metrics")
        seen.append(n)
    return seen


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str          # ">=" (a floor, e.g. throughput) or "<=" (a ceiling, e.g. latency)
    bound: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"

    def holds(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "bound": self.bound}


def parse_constraint(text: str) -> Constraint:
    m = _CONSTRAINT.match(str(text))
    if not m:
        raise ConfigError(f"--constraint={text}: not a constraint; allowed: METRIC>=NUMBER or METRIC<=NUMBER, "
                          "e.g. --constraint 'output_tokens_per_s>=1000' --constraint 'itl_ms_p99<=50'",
                          field="--constraint", value=text, allowed="METRIC>=NUMBER or METRIC<=NUMBER")
    metric, op, bound = m.group(1), m.group(2), float(m.group(3))
    if metric not in METRICS:
        raise ConfigError(f"--constraint={text}: {metric} is not a metric a search can constrain"
                          f"{_did_you_mean(metric)}; allowed: {ALLOWED_TEXT}", field="--constraint", value=text,
                          allowed=sorted(METRICS))
    if not math.isfinite(bound):
        raise ConfigError(f"--constraint={text}: the bound must be a finite number", field="--constraint",
                          value=text, allowed="a finite number")
    return Constraint(metric, op, bound)


class SearchSpec(BaseModel):
    """What a search optimises: stored in manifest.json (``search``) and search.json, so a
    ``--resume`` continues the same search."""

    model_config = ConfigDict(extra="forbid")

    objectives: list[str]
    directions: list[str]
    constraints: list[dict[str, Any]] = []
    confirm: int = 0
    n_trials: int
    sampler: str = ""
    space: dict[str, str] = {}       # swept key -> its expression as typed (choice(...), range(...), ...)
    fixed: list[str] = []            # overrides every trial shares

    def constraint_objs(self) -> list[Constraint]:
        return [Constraint(c["metric"], c["op"], float(c["bound"])) for c in self.constraints]

    @property
    def design_hash(self) -> str:
        from llem.config.hashing import sha256_of

        return sha256_of({"search": self.model_dump()})


# --- the search space, checked before anything runs ------------------------------------------

@dataclass
class Axis:
    key: str
    expression: str
    check_values: list[str]          # values whose configs are validated before the search starts


@dataclass
class SearchPlan:
    spec: SearchSpec
    axes: list[Axis]
    fixed: list[str]
    # the override sets validated before the search starts, with their configs
    checked: list[tuple[list[str], Any]] = field(default_factory=list)

    @property
    def study_design_hash(self) -> str:
        return self.spec.design_hash


def _axis_values(o) -> list[str]:
    """The values of a swept override that the sampler may propose at the edges of its range:
    every choice; a range's start and stop (hydra-optuna-sweeper reads the stop as inclusive,
    unlike a grid); an interval's ends."""
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep

    key = o.get_key_element()
    if o.is_choice_sweep() or (o.is_range_sweep() and o.value().shuffle):
        return [str(v) for v in o.sweep_string_iterator()]
    v = o.value()
    if isinstance(v, RangeSweep):
        return [str(v.start), str(v.stop)]
    if isinstance(v, IntervalSweep):
        # hydra-optuna-sweeper samples an interval as floats (Hydra reads interval(1,256) as
        # 1.0..256.0): a value inside it with a fraction catches a key that takes integers
        inside = float(v.start) + (float(v.end) - float(v.start)) * 0.4142135623730951
        return [str(v.start), str(v.end), f"{inside:.6g}"]
    raise ConfigError(f"{o.input_line}: this sweep cannot be searched; allowed: choice(...), a,b,c, range(...), "
                      f"interval(...)", field=key, value=o.input_line, allowed="choice, range or interval")


def split_space(arguments: list[str], parser) -> tuple[list[Axis], list[str]]:
    """Swept overrides (the search space) and plain ones (every trial's), in
    hydra-optuna-sweeper's reading: a later override of the same key wins."""
    from llem.config.compose import compose_errors, format_hydra_error

    try:
        parsed = parser.parse_overrides(list(arguments))
    except compose_errors() as err:
        raise ConfigError(format_hydra_error(err)) from None
    axes: dict[str, Axis] = {}
    fixed: dict[str, str] = {}
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            fixed.pop(key, None)
            axes[key] = Axis(key, o.input_line.split("=", 1)[1], _axis_values(o))
        else:
            axes.pop(key, None)
            fixed[key] = o.input_line
    return list(axes.values()), list(fixed.values())


def plan_search(arguments: list[str], composer, sweeper_cfg, *, objectives: list[str], constraints: list[str],
                confirm: Optional[int], given_hydra: list[str]) -> SearchPlan:
    """Check a search before anything is written: objectives, constraints, the sweeper's settings
    and the search space, whose every choice and every range end is composed and validated
    (one key varied at a time from the first value of each)."""
    obj = parse_objectives(objectives)
    cons = [parse_constraint(c) for c in constraints]
    dirs = [direction(m) for m in obj]
    _check_sweeper(sweeper_cfg, dirs, given_hydra)
    if confirm is not None and (not isinstance(confirm, int) or confirm < 0):
        raise ConfigError(f"--confirm={confirm}: allowed: an integer >= 0 (how many of the best candidates "
                          "are measured again before one is named)", field="--confirm", value=confirm,
                          allowed="an integer >= 0")
    params = sweeper_cfg.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()] + list(arguments)
    axes, fixed = split_space(args, composer.parser)
    if not axes:
        shown = " ".join(args) or "(no overrides)"
        raise ConfigError(f"the search space is empty ({shown}): nothing is swept; allowed: at least one swept key, "
                          "e.g. 'batch=choice(1,8,32)', 'output_len=range(32,256,32)', 'batch=tag(log,interval(1,256))'",
                          field="search space", value=shown, allowed="at least one swept key")
    first = [f"{a.key}={a.check_values[0]}" for a in axes]
    checked: list[tuple[list[str], Any]] = []

    intervals = {a.key for a in axes if a.expression.replace(" ", "").startswith(("interval(", "tag("))
                 and "interval(" in a.expression}

    def check(ovr: list[str], what: str) -> None:
        try:
            cfg = composer.compose(ovr)
        except ConfigError as err:
            key = what.split("=", 1)[0]
            hint = ("; interval(...) proposes floats: for a key that takes integers use range(start,stop,step) "
                    "or choice(...)") if key in intervals and "integer" in str(err) else ""
            raise ConfigError(f"search space {what}: {err}{hint}", field=key, value=what.split("=", 1)[-1],
                              allowed=getattr(err, "allowed", None)) from None
        checked.append((ovr, cfg))

    check(fixed + first, " ".join(first))
    for k, a in enumerate(axes):
        for v in a.check_values[1:]:
            ovr = fixed + first[:k] + [f"{a.key}={v}"] + first[k + 1:]
            check(ovr, f"{a.key}={v}")
    sampler = sweeper_cfg.get("sampler") or {}
    target = str(sampler.get("_target_", "")).rsplit(".", 1)[-1]
    seed = sampler.get("seed")
    spec = SearchSpec(objectives=obj, directions=dirs, constraints=[c.as_dict() for c in cons],
                      confirm=int(confirm or 0), n_trials=int(sweeper_cfg.get("n_trials")),
                      sampler=f"{target}(seed={seed})" if target else "",
                      space={a.key: a.expression for a in axes}, fixed=fixed)
    return SearchPlan(spec=spec, axes=axes, fixed=fixed, checked=checked)


def _given(given_hydra: list[str], key: str) -> bool:
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in given_hydra)


def _check_sweeper(sw, dirs: list[str], given_hydra: list[str]) -> None:
    n = sw.get("n_trials")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={n}: allowed: an integer >= 1", field="hydra.sweeper.n_trials",
                          value=n, allowed="an integer >= 1")
    nj = sw.get("n_jobs")
    if not isinstance(nj, int) or isinstance(nj, bool) or nj < 1:
        raise ConfigError(f"hydra.sweeper.n_jobs={nj}: allowed: an integer >= 1", field="hydra.sweeper.n_jobs",
                          value=nj, allowed="an integer >= 1")
    rate = sw.get("max_failure_rate")
    if not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
        raise ConfigError(f"hydra.sweeper.max_failure_rate={rate}: allowed: a number in [0, 1]",
                          field="hydra.sweeper.max_failure_rate", value=rate, allowed="a number in [0, 1]")
    if sw.get("storage") is not None:
        raise ConfigError(f"hydra.sweeper.storage={sw.get('storage')}: llem keeps a search's trials in the study "
                          "directory (manifest.json, search.json) and resumes from them; allowed: null",
                          field="hydra.sweeper.storage", value=sw.get("storage"), allowed="null")
    for key in ("search_space", "custom_search_space"):
        if sw.get(key) is not None:
            raise ConfigError(f"hydra.sweeper.{key} is not supported by llem's search (llem checks every value of "
                              "the space before the first trial); allowed: null, with the space given as "
                              "hydra.sweeper.params or sweep overrides", field=f"hydra.sweeper.{key}",
                              value=str(sw.get(key)), allowed="null")
    if _given(given_hydra, "hydra.sweeper.direction"):
        d = sw.get("direction")
        given = [str(x).split(".")[-1] for x in (d if isinstance(d, (list, tuple)) else [d])]
        if given != dirs:
            raise ConfigError(f"hydra.sweeper.direction={','.join(given)}: llem sets it from the objectives "
                              f"(--objective); allowed: {','.join(dirs)} or leave it out",
                              field="hydra.sweeper.direction", value=",".join(given), allowed=",".join(dirs))


# --- one trial's outcome ------------------------------------------------------------------

class Measure(BaseModel):
    """A metric of one job: its point value and 95% CI (None where the metric has no interval,
    e.g. latency percentiles)."""

    model_config = ConfigDict(extra="forbid")

    value: float
    ci95_low: Optional[float] = None
    ci95_high: Optional[float] = None


@dataclass
class Outcome:
    values: dict[str, Measure]                        # the objectives, measured
    constraints: dict[str, Optional[float]]           # each constrained metric's value
    violations: list[str]                             # constraints broken, as text
    reason: Optional[str] = None                      # why there is no value (failed job, not measured)
    estimated: bool = False                           # energy from a model (CodeCarbon), not a counter

    @property
    def feasible(self) -> bool:
        return self.reason is None and not self.violations


def measure(row: dict[str, Any], metric: str) -> Optional[Measure]:
    v = row.get(metric)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    lo, hi = row.get(f"{metric}_ci95_low"), row.get(f"{metric}_ci95_high")
    return Measure(value=float(v), ci95_low=None if lo is None else float(lo), ci95_high=None if hi is None else float(hi))


def evaluate(result: Optional[ExperimentResult], spec: SearchSpec, failure: Optional[str] = None) -> Outcome:
    """A job's result as the sampler sees it: the objectives' values, or why there are none
    (failed job, metric not measured) or why they do not count (a constraint broken)."""
    if result is None or result.status != "completed":
        why = failure or (f"{result.error_type}: {result.error_message}" if result is not None else "no result.json")
        return Outcome({}, {}, [], reason=f"the job failed ({why})"[:300])
    from llem.results.table import result_row

    row = result_row(result)
    values: dict[str, Measure] = {}
    missing = []
    for m in spec.objectives:
        got = measure(row, m)
        if got is None:
            missing.append(m)
        else:
            values[m] = got
    cons: dict[str, Optional[float]] = {}
    violations = []
    for c in spec.constraint_objs():
        got = measure(row, c.metric)
        cons[c.metric] = None if got is None else got.value
        if got is None:
            missing.append(c.metric)
        elif not c.holds(got.value):
            violations.append(f"{c.metric}={got.value:.4g} breaks {c.text}")
    estimated = bool(row.get("energy_estimated")) and any(m in _CI_METRICS and m != "output_tokens_per_s"
                                                          for m in spec.objectives)
    if missing:
        why = row.get("energy_not_measured_reason") if any("energy" in m or "joule" in m for m in missing) else None
        reason = "not measured: " + ", ".join(dict.fromkeys(missing)) + (f" ({why})" if why else "")
        return Outcome(values, cons, violations, reason=reason[:300], estimated=estimated)
    return Outcome(values, cons, violations, estimated=estimated)


# --- search.json --------------------------------------------------------------------------

class TrialRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int                     # the trial's number in this search (= the job's grid_index)
    job_id: str
    overrides: list[str]
    params: dict[str, str]          # the swept keys' values
    config_hash: Optional[str] = None
    status: str                     # the job's status in manifest.json
    # what the sampler was told: complete (a value), infeasible or failed (Optuna's FAIL), or
    # nothing yet (pending, running, or cut short by the study stopping)
    state: str
    values: dict[str, Measure] = {}
    constraints: dict[str, Optional[float]] = {}
    violations: list[str] = []
    reason: Optional[str] = None
    energy_estimated: bool = False
    result_path: Optional[str] = None


class Candidate(BaseModel):
    """A configuration named at the end: its values from the search, and from its confirmation
    when it was measured again."""

    model_config = ConfigDict(extra="forbid")

    trial: int
    job_id: str
    params: dict[str, str]
    overrides: list[str]
    config_hash: Optional[str] = None
    search_values: dict[str, Measure]
    confirm_job_id: Optional[str] = None
    confirm_status: Optional[str] = None          # the confirmation job's status
    confirmed_values: Optional[dict[str, Measure]] = None
    confirmed_violations: list[str] = []
    confirm_reason: Optional[str] = None
    # the values the choice used: the confirmation's where there is one, else the search's
    values: dict[str, Measure]
    values_from: str                              # "confirmation" or "search"
    tied_with: list[str] = []                     # job ids whose CI overlaps on the primary objective


class SearchRecord(JsonFile, BaseModel):
    """``search.json``: the search as it stands (rewritten after every trial) and, once it has
    ended, the best configuration (the Pareto front for several objectives)."""

    model_config = ConfigDict(extra="forbid")
    FILE_NAME: ClassVar[str] = SEARCH_NAME

    schema_version: str = "1.0"
    study_name: str
    study_dir: str
    spec: SearchSpec
    trials: list[TrialRecord] = []
    candidates: list[Candidate] = []               # confirmed (or, without --confirm, ranked) candidates
    best: Optional[Candidate] = None
    pareto_front: Optional[list[Candidate]] = None  # several objectives only
    notes: list[str] = []
    finished_at: Optional[str] = None



def params_of(overrides: list[str], keys) -> dict[str, str]:
    out = {}
    for o in overrides:
        k, _, v = o.lstrip("+~").partition("=")
        if k in keys:
            out[k] = v
    return out


# --- choosing ------------------------------------------------------------------------------

def _better(a: float, b: float, d: str) -> bool:
    return a < b if d == "minimize" else a > b


def dominates(a: dict[str, Measure], b: dict[str, Measure], spec: SearchSpec) -> bool:
    """``a`` is at least as good as ``b`` on every objective and better on one."""
    strictly = False
    for m, d in zip(spec.objectives, spec.directions):
        if _better(b[m].value, a[m].value, d):
            return False
        if _better(a[m].value, b[m].value, d):
            strictly = True
    return strictly


def pareto_front(points: list, spec: SearchSpec, key=lambda p: p.values) -> list:
    """The points no other point dominates, ordered by the primary (first) objective."""
    front = [p for p in points if not any(dominates(key(q), key(p), spec) for q in points if q is not p)]
    return rank(front, spec, key)


def rank(points: list, spec: SearchSpec, key=lambda p: p.values) -> list:
    """Best first on the primary (first) objective; a tie on it goes to the better on the next
    objectives in turn, then to the earlier trial. Ties are common, not rare: a counter that
    publishes in steps (NVML's every ~100 ms) gives repeats of one configuration equal energies,
    and a rank that ignored the other objectives on a tie could keep a trial that another trial
    of the same configuration dominates."""
    signs = [1 if d == "minimize" else -1 for d in spec.directions]

    def order(p) -> tuple:
        trial = getattr(p, "number", getattr(p, "trial", 0))  # a TrialRecord's number, a Candidate's trial
        return (*(s * key(p)[m].value for m, s in zip(spec.objectives, signs)), trial)

    return sorted(points, key=order)


def distinct_configs(trials: list[TrialRecord], spec: SearchSpec) -> list[TrialRecord]:
    """Feasible trials, the best-ranked one of each configuration (a sampler may propose one
    configuration twice; each time is measured), in ``rank``'s order: no other trial of its
    configuration dominates the one kept."""
    seen: set[str] = set()
    out = []
    for t in rank([t for t in trials if t.state == "complete"], spec):
        k = t.config_hash or " ".join(sorted(t.overrides))
        if k not in seen:
            seen.add(k)
            out.append(t)
    return out


def confirm_candidates(trials: list[TrialRecord], spec: SearchSpec) -> list[TrialRecord]:
    """What ``--confirm K`` measures again: the K best configurations (one objective), or up to K
    points of the Pareto front, best on the primary objective first (several)."""
    if spec.confirm <= 0:
        return []
    pool = distinct_configs(trials, spec)
    if len(spec.objectives) > 1:
        pool = pareto_front(pool, spec)
    return pool[: spec.confirm]


def overlaps(a: Measure, b: Measure) -> bool:
    """Two 95% intervals that overlap: the data cannot tell the two apart (conservative: two
    intervals that just overlap may still differ at 95%; two that do not, differ)."""
    if None in (a.ci95_low, a.ci95_high, b.ci95_low, b.ci95_high):
        return False
    return a.ci95_low <= b.ci95_high and b.ci95_low <= a.ci95_high


def choose(trials: list[TrialRecord], confirmations: dict[int, TrialRecord], spec: SearchSpec
           ) -> tuple[list[Candidate], Optional[Candidate], Optional[list[Candidate]], list[str]]:
    """The candidates, the best one and (several objectives) the Pareto front.

    With confirmations the choice uses the confirmation's values only: the search's own values
    of its best trials are biased towards luck (the minimum of noisy measurements is lower than
    the truth), a fresh measurement is not. A candidate that breaks a constraint when measured
    again is dropped. Ties (overlapping 95% CIs on the primary objective) are named."""
    notes: list[str] = []
    pool = distinct_configs(trials, spec)
    if not pool:
        return [], None, ([] if len(spec.objectives) > 1 else None), notes
    multi = len(spec.objectives) > 1
    cands: list[Candidate] = []
    if confirmations:
        for t in confirm_candidates(trials, spec):
            c = confirmations.get(t.number)
            cand = Candidate(trial=t.number, job_id=t.job_id, params=t.params, overrides=t.overrides,
                             config_hash=t.config_hash, search_values=t.values, values=t.values, values_from="search")
            if c is not None:
                cand.confirm_job_id, cand.confirm_status = c.job_id, c.status
                cand.confirmed_values = c.values or None
                cand.confirmed_violations = list(c.violations)
                cand.confirm_reason = c.reason
                if c.state == "complete":
                    cand.values, cand.values_from = c.values, "confirmation"
            cands.append(cand)
        usable = [c for c in cands if c.values_from == "confirmation"]
        dropped = [c for c in cands if c.values_from != "confirmation"]
        for c in dropped:
            what = f"candidate {c.job_id} ({_config_text(c.params)}) is not named: "
            if c.confirm_job_id is None:
                notes.append(what + "it was not measured again")
            else:
                why = "; ".join(c.confirmed_violations) or c.confirm_reason or c.confirm_status or "no value"
                notes.append(what + f"its confirmation {c.confirm_job_id}: {why}")
        if not usable:
            notes.append("no candidate was confirmed: the choice falls back to the search's own values")
            usable = [c.model_copy(update={"values": c.search_values, "values_from": "search"}) for c in cands]
    else:
        usable = [Candidate(trial=t.number, job_id=t.job_id, params=t.params, overrides=t.overrides,
                            config_hash=t.config_hash, search_values=t.values, values=t.values,
                            values_from="search") for t in pool]
        cands = usable
    ranked = pareto_front(usable, spec) if multi else rank(usable, spec)
    if multi and confirmations:
        for c in usable:
            if c not in ranked:
                by = [d.job_id for d in ranked if dominates(d.values, c.values, spec)]
                notes.append(f"candidate {c.job_id} ({_config_text(c.params)}) is off the Pareto front once measured "
                             f"again: {', '.join(by)} beats it on every objective")
    best = ranked[0]
    m = spec.objectives[0]
    best.tied_with = [c.job_id for c in usable if c is not best and overlaps(c.values[m], best.values[m])]
    if best.tied_with:
        notes.append(f"{best.job_id} has the best {m}, but its 95% CI overlaps that of {', '.join(best.tied_with)}: "
                     "these measurements cannot tell them apart (measure them again, or with more cycles)")
    return cands, best, (ranked if multi else None), notes


# --- the summary printed at the end ------------------------------------------------------------

def _config_text(params: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"


def _vals(values: dict[str, Measure], spec: SearchSpec) -> list[str]:
    from llem.results.fmt import fmt_with_ci

    out = []
    for m in spec.objectives:
        v = values.get(m)
        out.append("n/a" if v is None else fmt_with_ci(v.value, v.ci95_low, v.ci95_high))
    return out


def summary_text(rec: SearchRecord) -> str:
    """The search's end on the terminal: how its trials went, then the best configuration (or
    the Pareto front) with each value's 95% CI, and where search.json is."""
    spec = rec.spec
    states: dict[str, int] = {}
    for t in rec.trials:
        states[t.state] = states.get(t.state, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none run"
    lines = [f"== llem search {rec.study_name}: {len(rec.trials)} of {spec.n_trials} trials ({counts})"]
    obj = ", ".join(f"{m} ({d})" for m, d in zip(spec.objectives, spec.directions))
    cons = ", ".join(f"{c['metric']}{c['op']}{float(c['bound']):g}" for c in spec.constraints)
    lines.append(f"objective{'s' if len(spec.objectives) > 1 else ''}: {obj}" + (f"; constraints: {cons}" if cons else "")
                 + f"; sampler: {spec.sampler or '?'}")
    if rec.best is None:
        lines.append("no configuration named: no trial " + ("met the constraints" if spec.constraints else "gave a value"))
    else:
        multi = rec.pareto_front is not None
        shown = rec.candidates if spec.confirm and rec.candidates else (rec.pareto_front if multi else [rec.best])
        on_front = {c.job_id for c in rec.pareto_front or []}
        head = ["", "job", "config", *[f"{m} [95% CI]" if m in _CI_METRICS else m for m in spec.objectives], "from"]
        rows = [head]
        for c in shown:
            mark = "*" if c.job_id == rec.best.job_id else ("f" if multi and spec.confirm and c.job_id in on_front else "")
            if c.values_from == "confirmation":
                src = f"confirmation {c.confirm_job_id}"
            elif not spec.confirm:
                src = "search"
            elif c.confirm_job_id is None:
                src = "search (not measured again)"
            else:
                src = f"search (confirmation {'infeasible' if c.confirmed_violations else c.confirm_status})"
            rows.append([mark, c.job_id, _config_text(c.params), *_vals(c.values, spec), src])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        if multi and spec.confirm:
            title = (f"candidates measured again (* best on {spec.objectives[0]}, f: on the Pareto front of the "
                     "confirmed values)")
        elif multi:
            title = f"Pareto front (* best on {spec.objectives[0]})"
        else:
            title = "candidates measured again (* best)" if spec.confirm else "best configuration"
        lines.append(title + ":")
        for k, r in enumerate(rows):
            lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(len(r))).rstrip())
            if k == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        b = rec.best
        lines.append(f"best: {b.job_id} {_config_text(b.params)}: "
                     + ", ".join(f"{m} {v}" for m, v in zip(spec.objectives, _vals(b.values, spec)))
                     + (f" (measured again by {b.confirm_job_id}; in the search: "
                        + ", ".join(_vals(b.search_values, spec)) + ")" if b.values_from == "confirmation" else ""))
    lines += [f"note: {n}" for n in rec.notes]
    lines.append(f"search: {Path(rec.study_dir) / SEARCH_NAME}")
    return "\n".join(lines)
