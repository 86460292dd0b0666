"""The shipped tasks and task resolution."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from llem.config.quality_tasks import SHIPPED_DIR, estimate, read_task_yaml, resolve_tasks, shipped_task_names
from tests.conftest import REPO


def _rows(name):
    return [json.loads(x) for x in (SHIPPED_DIR / f"{name}.jsonl").read_text().splitlines() if x.strip()]


def test_shipped_tasks_are_the_builder_scripts_output():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_quality_tasks.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert shipped_task_names() == ["llem_easy_gen", "llem_easy_mc"]


def test_multiple_choice_task_is_large_enough_and_balanced():
    rows = _rows("llem_easy_mc")
    assert 150 <= len(rows) <= 200  # a stderr of ~0.035 on an accuracy near 0.75
    assert all(len(r["choices"]) == 4 and len(set(r["choices"])) == 4 for r in rows)
    assert len({r["question"] for r in rows}) == len(rows)
    # the correct answer sits in every position about equally often (seeded shuffle)
    pos = Counter(r["answer"] for r in rows)
    assert set(pos) == {0, 1, 2, 3} and max(pos.values()) - min(pos.values()) <= 20


def test_surface_features_do_not_give_the_answer_away():
    """A model with random weights pays about log(vocab) per token, so it picks the shortest choice;
    a model that knows nothing of the words but their frequency picks the commonest one. Either
    heuristic must stay near chance, so that only knowledge beats it."""

    rows = _rows("llem_easy_mc")
    shortest = sum(min(range(4), key=lambda i: (len(r["choices"][i]), i)) == r["answer"] for r in rows) / len(rows)
    longest = sum(max(range(4), key=lambda i: (len(r["choices"][i]), -i)) == r["answer"] for r in rows) / len(rows)
    first = sum(r["answer"] == 0 for r in rows) / len(rows)
    for rate in (shortest, longest, first):
        assert abs(rate - 0.25) < 0.10, (shortest, longest, first)


def test_generation_task_answers_are_single_words():
    rows = _rows("llem_easy_gen")
    assert len(rows) >= 30 and all(r["answer"].isalnum() for r in rows)
    cfg = read_task_yaml(SHIPPED_DIR / "llem_easy_gen.yaml")
    assert cfg["output_type"] == "generate_until" and cfg["metric_list"][0]["metric"] == "exact_match"


def test_shipped_yaml_loads_in_lm_eval_with_the_same_data(tmp_path, monkeypatch):
    """lm-eval builds the shipped task from the config llem hands it, from any working directory."""
    monkeypatch.chdir(tmp_path)
    from llem.quality.runner import _spec
    from lm_eval.tasks import TaskManager

    ref = resolve_tasks(["llem_easy_mc"], [])[0]
    task = TaskManager(include_defaults=False).load([_spec(ref)])["tasks"]["llem_easy_mc"]
    docs = list(task.test_docs())
    assert len(docs) == ref.n_docs == len(_rows("llem_easy_mc"))
    assert task.doc_to_text(docs[0]) == f"Question: {docs[0]['question']}\nAnswer:"


def test_estimate_counts_samples_and_requests():
    from llem.config.quality_options import QualityConfig

    q = QualityConfig(kind="lm_eval", tasks=["llem_easy_mc", "llem_easy_gen"], limit=10)
    est = {e["task"]: e for e in estimate(q)}
    assert est["llem_easy_mc"]["samples"] == 10 and est["llem_easy_mc"]["requests"] == 40
    assert est["llem_easy_gen"]["requests"] == 10 and est["llem_easy_gen"]["request_type"] == "generate_until"
    q = QualityConfig(kind="lm_eval", tasks=["llem_easy_mc"])
    assert estimate(q)[0]["samples"] == len(_rows("llem_easy_mc"))


def test_include_path_yaml_with_include_and_later_folders_override(task_dir, tmp_path):
    from tests.quality.conftest import write_mc_task

    write_mc_task(task_dir, "base_mc")
    (task_dir / "child.yaml").write_text("include: base_mc.yaml\ntask: child_mc\n")
    refs = resolve_tasks(["child_mc"], [str(task_dir)])
    assert refs[0].data_files["test"].name == "base_mc.jsonl" and refs[0].output_type == "multiple_choice"
    other = tmp_path / "other"
    write_mc_task(other, "base_mc", rows=[{"question": "x", "choices": ["a", "b", "c"], "answer": 1}])
    ref = resolve_tasks(["base_mc"], [str(task_dir), str(other)])[0]
    assert ref.n_docs == 1 and ref.mean_choices == 3


def test_missing_data_file_and_bad_include_path_are_refused(task_dir, tmp_path):
    y = task_dir / "gone.yaml"
    task_dir.mkdir(parents=True)
    y.write_text("task: gone\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: gone.jsonl\n")
    with pytest.raises(ValueError, match="gone.jsonl does not exist"):
        resolve_tasks(["gone"], [str(task_dir)])
    with pytest.raises(ValueError, match="is not a folder"):
        resolve_tasks(["llem_easy_mc"], [str(tmp_path / "nope")])


def test_a_broken_yaml_blocks_only_a_request_for_itself(task_dir):
    from tests.quality.conftest import write_mc_task

    write_mc_task(task_dir, "good_mc")
    (task_dir / "broken.yaml").write_text("task: [unclosed\n")
    (task_dir / "notes.yaml").write_text("- just\n- a list\n")
    assert resolve_tasks(["good_mc"], [str(task_dir)])[0].n_docs == 6
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML"):
        resolve_tasks(["broken"], [str(task_dir)])
    with pytest.raises(ValueError, match="notes.yaml is not a YAML mapping"):
        resolve_tasks(["notes"], [str(task_dir)])
