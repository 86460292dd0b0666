"""Which lm-eval tasks a name means, and whether they can run here, checked before anything runs.

A task name is looked up, in order, among
1. llem's shipped tasks (``llem/quality/tasks/*.yaml``: ``llem_easy_mc``, ``llem_easy_gen``),
2. the task YAML files under ``quality.include_path`` folders,
3. lm-eval's own registry (``arc_easy``, ``hellaswag``, ``gsm8k``, ``mmlu`` ...).

Local task YAML (1 and 2) is read here without importing lm-eval (importing it costs seconds);
relative ``data_files`` in it are resolved against the YAML's own folder (lm-eval alone would
resolve them against the working directory). lm-eval's registry is indexed only when a name is not
local (~4 s), once per process.

Refused with one line (ValueError -> ConfigError, exit 2): an unknown name (with close matches),
an empty task YAML, a task whose data file is missing or has no rows, a hub task whose dataset is
not in the local Hugging Face cache while offline.
"""
from __future__ import annotations

import difflib
import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# lm-eval's task index logs and draws progress bars on import: quiet by default
_ENV = {"TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "LMEVAL_LOG_LEVEL": "WARNING",
        # lm-eval's bootstrap otherwise starts a pool of every core of the machine (not of the job's
        # allocation); llem's default metrics have closed-form stderrs and need no bootstrap at all
        "DISABLE_MULTIPROC": "1"}
_LOGGERS = ("lm_eval", "lm-eval", "datasets", "evaluate", "absl")


def quiet_lm_eval() -> None:
    for k, v in _ENV.items():
        os.environ.setdefault(k, v)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


# the shipped task files are data of llem.quality, read here where task names are checked
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "quality" / "tasks"
#: dataset builders of the ``datasets`` library that read local files named in ``data_files``
LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")


@dataclass
class TaskRef:
    """One requested task, resolved."""

    name: str
    #: "llem" (shipped), "include_path" or "lm-eval" (lm-eval's registry)
    source: str
    yaml_path: Optional[Path] = None
    kind: str = "task"           # "task" or "group" (lm-eval groups and tags evaluate as one unit)
    output_type: Optional[str] = None
    data_files: dict[str, Path] = field(default_factory=dict)
    dataset: Optional[str] = None  # a Hugging Face dataset name ("allenai/ai2_arc"), when not local files
    n_docs: Optional[int] = None   # rows of the evaluated split, when known without loading the data
    mean_choices: Optional[float] = None  # multiple choice: mean number of choices (local JSONL only)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "kind": self.kind,
                "yaml_path": str(self.yaml_path) if self.yaml_path else None, "output_type": self.output_type,
                "data_files": {k: str(v) for k, v in self.data_files.items()}, "dataset": self.dataset,
                "n_docs": self.n_docs}


# --- reading task YAML without lm-eval ------------------------------------------------------

class _Function(str):
    """A ``!function module.name`` reference, kept as text (resolved by lm-eval at run time)."""


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: _Function(loader.construct_scalar(node)))
    return Loader


def read_task_yaml(path: Path, _seen: Optional[set] = None) -> Optional[dict]:
    """The YAML as a dict with ``include:`` merged (as lm-eval merges it), or None if it is empty."""
    import yaml

    path = Path(path).resolve()
    seen = _seen or set()
    if path in seen:
        raise ValueError(f"quality.include_path: {path} includes itself")
    seen.add(path)
    text = path.read_text(encoding="utf-8")
    try:
        cfg = yaml.load(text, Loader=_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        raise ValueError(f"quality task file {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise ValueError(f"quality task file {path} is not a YAML mapping ({type(cfg).__name__})")
    includes = cfg.pop("include", None)
    if includes is None:
        return cfg
    merged: dict = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        p = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        merged.update(read_task_yaml(p, seen) or {})
    merged.update(cfg)
    return merged


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.yaml") if "__pycache__" not in p.parts)


def _local_index(include_path: tuple[str, ...]) -> tuple[dict, dict]:
    """name -> (yaml path, source, cfg) for shipped and include_path tasks; and stem -> (path, why) of
    YAML files that are empty or unreadable (so a request for them names the file). Cached per process
    while no YAML file changes (a study validates every job with the same folders)."""
    folders = [(SHIPPED_DIR, "llem")] + [(Path(p).expanduser(), "include_path") for p in include_path]
    files = tuple((str(y), source, y.stat().st_mtime_ns, y.stat().st_size)
                  for folder, source in folders for y in _yaml_files(folder))
    return _index(files)


@functools.lru_cache(maxsize=32)
def _index(files: tuple[tuple[str, str, int, int], ...]) -> tuple[dict, dict]:
    index: dict[str, tuple[Path, str, dict]] = {}
    empty: dict[str, Path] = {}
    for path, source, _, _ in files:
        y = Path(path)
        try:
            cfg = read_task_yaml(y)
        except (ValueError, OSError) as err:
            # a broken file blocks only a request for its own name (lm-eval's folders hold other YAML too)
            empty[y.stem] = (y, str(err))
            continue
        if cfg is None:
            empty[y.stem] = (y, f"quality.tasks: task file {y} is empty; allowed: an lm-eval task YAML "
                                "(task:, dataset_path:, output_type:, ...)")
            continue
        for key in ("task", "group"):
            name = cfg.get(key)
            if isinstance(name, str):
                index[name] = (y, source, cfg)  # later folders override earlier ones, as in lm-eval
                break
    return index, empty


def shipped_task_names() -> list[str]:
    return sorted(n for n, (_, src, _) in _local_index(())[0].items() if src == "llem")


def resolve_data_files(cfg: dict, yaml_path: Path) -> dict[str, Path]:
    """``dataset_kwargs.data_files`` of a local-file task, each resolved against the YAML's folder."""
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if files is None:
        return {}
    if isinstance(files, (str, list)):
        files = {"train": files}
    out = {}
    for split, f in files.items():
        f = f[0] if isinstance(f, list) and len(f) == 1 else f
        if not isinstance(f, str):
            continue  # several files per split: left to lm-eval
        p = Path(f).expanduser()
        out[split] = p if p.is_absolute() else (yaml_path.parent / p).resolve()
    return out


def _count_rows(path: Path) -> tuple[int, Optional[float]]:
    """Rows of a JSONL file, and their mean number of ``choices`` when they have that field."""
    from llem.datasets import jsonl_rows

    rows, choices = 0, []
    for _, row in jsonl_rows(path, f"quality task data {path}"):
        rows += 1
        if isinstance(row, dict) and isinstance(row.get("choices"), list):
            choices.append(len(row["choices"]))
    return rows, (sum(choices) / len(choices) if choices and len(choices) == rows else None)


def _local_ref(name: str, yaml_path: Path, source: str, cfg: dict) -> TaskRef:
    kind = "group" if "group" in cfg and "task" not in cfg else "task"
    ref = TaskRef(name=name, source=source, yaml_path=yaml_path, kind=kind, output_type=cfg.get("output_type"))
    if kind == "group" or isinstance(cfg.get("custom_dataset"), _Function):
        return ref  # a group's members, or data built by a function: checked when lm-eval loads them
    path = cfg.get("dataset_path")
    if path in LOCAL_BUILDERS:
        files = resolve_data_files(cfg, yaml_path)
        if not files:
            raise ValueError(f"quality.tasks: task {name!r} ({yaml_path}) reads dataset_path={path} but names no "
                             "dataset_kwargs.data_files; allowed: data_files with a local file per split")
        ref.data_files = files
        split = cfg.get("test_split") or cfg.get("validation_split") or next(iter(files))
        for s, f in files.items():
            if not f.is_file():
                raise ValueError(f"quality.tasks: task {name!r} data file {f} does not exist (split {s}, from {yaml_path})")
            if f.stat().st_size == 0:
                raise ValueError(f"quality.tasks: task {name!r} data file {f} is empty (0 rows); allowed: a file "
                                 "with at least one sample")
            if path == "json" and s == split:
                rows, mean_choices = _count_rows(f)
                if rows == 0:
                    raise ValueError(f"quality.tasks: task {name!r} data file {f} is empty (0 rows); allowed: a file "
                                     "with at least one sample")
                ref.n_docs, ref.mean_choices = rows, mean_choices
    elif isinstance(path, str):
        ref.dataset = path
        _check_hub_dataset(name, path, cfg.get("dataset_name"))
    return ref


# --- lm-eval's registry ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def lm_eval_registry():
    """lm-eval's TaskManager over its built-in tasks (indexing them costs ~4 s), or None when
    lm-eval is not installed."""
    import importlib.util

    if importlib.util.find_spec("lm_eval") is None:
        return None
    quiet_lm_eval()
    from lm_eval.tasks import TaskManager

    return TaskManager()


def _registry_ref(name: str, tm) -> TaskRef:
    entry = tm.task_index[name]
    kind = getattr(entry.kind, "name", str(entry.kind)).lower()
    kind = "task" if kind in ("task", "py_task") else "group"
    ref = TaskRef(name=name, source="lm-eval", yaml_path=Path(entry.yaml_path) if entry.yaml_path else None, kind=kind)
    members = [name] if kind == "task" else _leaf_tasks(name, tm)
    for member in members:
        e = tm.task_index.get(member)
        if e is None or e.yaml_path is None:
            continue
        cfg = read_task_yaml(Path(e.yaml_path)) or {}
        if kind == "task":
            ref.output_type = cfg.get("output_type")
        if cfg.get("dataset_path") and not isinstance(cfg.get("custom_dataset"), _Function):
            ref.dataset = ref.dataset or cfg["dataset_path"]
            _check_hub_dataset(name, cfg["dataset_path"], cfg.get("dataset_name"))
    return ref


def _leaf_tasks(name: str, tm, depth: int = 0) -> list[str]:
    """The tasks a group or tag stands for (lm-eval's index records them without loading data)."""
    if depth > 5:
        return []
    e = tm.task_index.get(name)
    kind = getattr(getattr(e, "kind", None), "name", "").lower()
    if kind in ("task", "py_task"):
        return [name]
    if kind == "tag":
        return [t for t, x in tm.task_index.items() if name in (x.tags or ())]
    cfg = read_task_yaml(Path(e.yaml_path)) if e is not None and e.yaml_path else {}
    out = []
    for child in (cfg or {}).get("task") or []:
        cname = child if isinstance(child, str) else (child or {}).get("task") or (child or {}).get("group")
        if isinstance(cname, str):
            out += _leaf_tasks(cname, tm, depth + 1)
    return out


@functools.lru_cache(maxsize=256)
def _hub_dataset_cached(path: str, name: Optional[str]) -> Optional[str]:
    """None if ``datasets`` can build the dataset from the local cache; else why not."""
    try:
        import datasets
    except ImportError as err:
        return f"the datasets library is not installed ({err})"
    try:
        datasets.load_dataset_builder(path, name)
    except Exception as err:  # datasets raises several types for "not in the cache"
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    return None


def _check_hub_dataset(task: str, path: str, name: Optional[str]) -> None:
    from llem.models.offline import is_offline, offline_reason

    if not is_offline() or Path(path).expanduser().exists():
        return  # online, it downloads when the job runs (outside every measured window)
    why = _hub_dataset_cached(path, name)
    if why is not None:
        shown = f"{path}" + (f" ({name})" if name else "")
        raise ValueError(f"quality.tasks: task {task!r} needs the Hugging Face dataset {shown}, which is not in the "
                         f"local cache while offline ({offline_reason()}); allowed offline: llem's shipped tasks, local "
                         "task files, or hub tasks pre-fetched into the cache (docs/quality.md)")


# --- the check run at validation --------------------------------------------------------------

def resolve_tasks(tasks: list[str], include_path: list[str]) -> list[TaskRef]:
    """Every requested task resolved and checked; ValueError (one line) for the first problem."""
    for p in include_path:
        if not Path(p).expanduser().is_dir():
            raise ValueError(f"quality.include_path: {p!r} is not a folder; allowed: folders of lm-eval task YAML files")
    seen = set()
    for t in tasks:
        if t in seen:
            raise ValueError(f"quality.tasks: {t!r} is listed twice; allowed: each task once")
        seen.add(t)
    index, empty = _local_index(tuple(str(Path(p).expanduser().resolve()) for p in include_path))
    refs = []
    for name in tasks:
        if name in index:
            refs.append(_local_ref(name, *index[name]))
            continue
        if name in empty:
            raise ValueError(empty[name][1])
        tm = lm_eval_registry()
        if tm is not None and name in tm.task_index:
            refs.append(_registry_ref(name, tm))
            continue
        candidates = sorted(set(index) | set(tm.all_tasks if tm is not None else ()))
        near = difflib.get_close_matches(name, candidates, n=4, cutoff=0.6)
        places = ["llem's shipped tasks"] + (["quality.include_path"] if include_path else []) + \
                 (["lm-eval's registry"] if tm is not None else [])
        where = ", ".join(places[:-1]) + " or " + places[-1] if len(places) > 1 else places[0]
        if tm is None:
            where += " (lm-eval is not installed: its registry was not searched)"
        raise ValueError(f"quality.tasks: {name!r} is not a task in {where}; "
                         + (f"did you mean {', '.join(near)}? " if near else "")
                         + f"shipped: {', '.join(shipped_task_names())}")
    return refs


def check_tasks(tasks: list[str], include_path: list[str]) -> None:
    resolve_tasks(list(tasks), list(include_path))


# --- the evaluation's length, for --dry-run ------------------------------------------------------

def estimate(quality) -> list[dict[str, Any]]:
    """Per task: samples and model requests the evaluation will make, where they are known without
    loading the data (local JSONL tasks); hub tasks say so. Runs nothing."""
    out = []
    for ref in resolve_tasks(list(quality.tasks), list(quality.include_path)):
        n = ref.n_docs
        if n is not None and quality.limit is not None:
            n = min(n, quality.limit)
        elif n is None and quality.limit is not None and ref.kind == "task":
            n = None  # at most limit; the split's size is unknown until lm-eval loads it
        per = ref.mean_choices if ref.output_type == "multiple_choice" else (1 if ref.output_type else None)
        requests = round(n * per) if n is not None and per is not None else None
        kind = {"multiple_choice": "loglikelihood", "generate_until": "generate_until"}.get(ref.output_type or "",
                                                                                            ref.output_type)
        out.append({"task": ref.name, "source": ref.source, "samples": n, "limit": quality.limit,
                    "requests": requests, "request_type": kind})
    return out


def estimate_text(quality) -> str:
    """One cell of the dry-run table: "llem_easy_mc 157 samples/628 loglikelihood; ..."."""
    if not quality.enabled:
        return "-"
    parts = []
    for e in estimate(quality):
        if e["samples"] is None:
            size = f"<= {e['limit']} samples" if e["limit"] else "all samples (size known when loaded)"
        else:
            size = f"{e['samples']} samples"
        if e["requests"] is not None:
            size += f"/{e['requests']} {e['request_type']}"
        parts.append(f"{e['task']} {size}")
    return "; ".join(parts)
