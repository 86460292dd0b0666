"""Helpers for the quality tests: task folders written into a test's temporary directory."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

MC_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{text}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_mc_task(folder: Path, name: str = "my_mc", rows=None, text: str = "Q: {{question}}\\nA:",
                  data: str = None) -> Path:
    """A multiple-choice task YAML + JSONL in ``folder`` (relative data path, as a user writes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = data or f"{name}.jsonl"
    if rows is None:
        rows = [{"question": f"Is {i} a number?", "choices": ["yes", "no"], "answer": 0} for i in range(6)]
    (folder / data).write_text("".join(json.dumps(r) + "\n" for r in rows))
    y = folder / f"{name}.yaml"
    y.write_text(MC_YAML.format(name=name, data=data, text=text))
    return y


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return tmp_path / "tasks"
