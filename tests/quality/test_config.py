"""The quality config group: typed fields, composition, hashing, --cfg job, --dry-run, and every
refusal (exit 2, one line, nothing written)."""
from __future__ import annotations

import pytest

from llem.config.compose import load_config
from llem.config.schema import ExperimentConfig
from llem.errors import ConfigError
from tests.conftest import FAST, run_llem
from tests.quality.conftest import write_mc_task

OK = ["quality=lm_eval", "quality.allow_random_weights=true"]


def test_quality_defaults_to_none_and_leaves_the_config_hash_as_before():
    cfg = load_config([])
    assert cfg.quality.kind == "none" and not cfg.quality.enabled
    # a config without quality hashes exactly as before the quality group existed
    assert "quality" not in cfg.semantic_dict()
    assert cfg.config_hash == ExperimentConfig().config_hash


def test_lm_eval_fields_are_typed_and_change_the_hash():
    a = load_config([*OK, "quality.tasks=[llem_easy_mc]", "quality.limit=20", "quality.num_fewshot=2",
                     "quality.batch_size=4", "+quality.gen_kwargs.temperature=0.5", "+quality.gen_kwargs.do_sample=true",
                     "quality.bootstrap_iters=0", "quality.log_samples=true", "quality.apply_chat_template=true"])
    q = a.quality
    assert (q.kind, q.tasks, q.limit, q.num_fewshot, q.batch_size) == ("lm_eval", ["llem_easy_mc"], 20, 2, 4)
    assert q.gen_kwargs == {"temperature": 0.5, "do_sample": True} and q.log_samples and q.apply_chat_template
    b = load_config([*OK, "quality.tasks=[llem_easy_mc]", "quality.limit=21"])
    assert len({a.config_hash, b.config_hash, load_config([]).config_hash}) == 3


def test_quality_composes_with_other_groups():
    c = load_config(["backend=vllm", "precision=bf16", "model=llama-3.2-1b", *OK, "quality.tasks=[llem_easy_gen]"])
    assert c.backend == "vllm" and c.quality.tasks == ["llem_easy_gen"] and c.model.name == "llama-3.2-1b"


@pytest.mark.slow
def test_cfg_job_shows_the_quality_fields(tmp_path):
    p = run_llem(["run", *OK, "--cfg", "job"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    for key in ("kind: lm_eval", "tasks:", "num_fewshot:", "limit:", "batch_size:", "gen_kwargs:",
                "apply_chat_template:", "bootstrap_iters:", "include_path:", "log_samples:", "allow_random_weights:"):
        assert key in p.stdout, key
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_dry_run_estimates_the_evaluation_length(tmp_path):
    p = run_llem(["run", "-m", "precision=fp32,bf16", *OK, "quality.tasks=[llem_easy_mc,llem_easy_gen]",
                  "quality.limit=50", "--dry-run"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "quality eval (est.)" in p.stdout
    # 50 multiple-choice samples x 4 choices = 200 loglikelihood requests; 40 generation samples (all of them)
    assert p.stdout.count("llem_easy_mc 50 samples/200 loglikelihood; llem_easy_gen 40 samples/40 generate_until") == 2
    assert not list(tmp_path.iterdir())


def _refused(tmp_path, *overrides) -> str:
    p = run_llem(["run", *FAST, *overrides], cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
    return lines[0]


@pytest.mark.slow
def test_refuses_random_weights_unless_allowed(tmp_path):
    line = _refused(tmp_path, "model=smollm2-135m", "quality=lm_eval")
    assert "model.source=no_weights" in line and "quality.allow_random_weights=true" in line
    assert "chance" in line


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["0", "-3", "0.5"])
def test_refuses_a_limit_below_one_sample(tmp_path, limit):
    line = _refused(tmp_path, *OK, f"quality.limit={limit}")
    assert f"quality.limit={limit}" in line.replace("'", "") and "allowed: an integer >= 1" in line


@pytest.mark.slow
def test_unknown_task_names_close_matches(tmp_path):
    line = _refused(tmp_path, *OK, "quality.tasks=[llem_easy_m]")
    assert "'llem_easy_m' is not a task" in line and "did you mean llem_easy_mc" in line
    # lm-eval's own registry is searched too
    line = _refused(tmp_path, *OK, "quality.tasks=[arc_eazy]")
    assert "did you mean" in line and "arc_easy" in line


@pytest.mark.slow
def test_refuses_an_empty_task_file(tmp_path, task_dir):
    task_dir.mkdir(parents=True)
    (task_dir / "blank.yaml").write_text("")
    line = _refused(tmp_path, *OK, f"quality.include_path=[{task_dir}]", "quality.tasks=[blank]")
    assert "blank.yaml is empty" in line
    write_mc_task(task_dir, "norows", rows=[])
    line = _refused(tmp_path, *OK, f"quality.include_path=[{task_dir}]", "quality.tasks=[norows]")
    assert "norows.jsonl is empty (0 rows)" in line


@pytest.mark.slow
def test_refuses_a_task_whose_dataset_is_not_cached_offline(tmp_path, task_dir):
    task_dir.mkdir(parents=True)
    (task_dir / "hubtask.yaml").write_text("task: hubtask\ndataset_path: llem-test-org/no-such-dataset\n"
                                           "output_type: multiple_choice\ntest_split: test\ndoc_to_text: q\n"
                                           "doc_to_choice: ['a', 'b']\ndoc_to_target: 0\n")
    env = {"HF_HOME": str(tmp_path / "hf")}  # an empty cache
    p = run_llem(["run", *FAST, *OK, f"quality.include_path=[{task_dir}]", "quality.tasks=[hubtask]"], cwd=tmp_path,
                 env=env)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "llem-test-org/no-such-dataset" in p.stderr and "not in the local cache while offline" in p.stderr
    # lm-eval's own hub tasks too: arc_easy's dataset (allenai/ai2_arc) is not in an empty cache
    p = run_llem(["run", *FAST, *OK, "quality.tasks=[arc_easy]"], cwd=tmp_path, env=env)
    assert p.returncode == 2 and "allenai/ai2_arc" in p.stderr and "offline" in p.stderr, p.stderr
    assert not (tmp_path / "outputs").exists()


def test_refuses_empty_task_list_tensor_parallel_and_managed_gen_kwargs():
    with pytest.raises(ConfigError, match="quality.tasks is empty"):
        load_config([*OK, "quality.tasks=[]"])
    with pytest.raises(ConfigError, match="pytorch.tp_plan=auto is not supported"):
        load_config([*OK, "pytorch.tp_plan=auto"])
    with pytest.raises(ConfigError, match="quality.gen_kwargs.until is set by the task"):
        load_config([*OK, "+quality.gen_kwargs.until=[x]"])
    with pytest.raises(ConfigError, match="listed twice"):
        load_config([*OK, "quality.tasks=[llem_easy_mc,llem_easy_mc]"])


def test_quality_keys_without_quality_lm_eval_say_how_to_turn_it_on():
    with pytest.raises(ConfigError, match=r"quality.tasks: unknown key with quality=none; allowed: add quality=lm_eval"):
        load_config(["quality.tasks=[llem_easy_mc]"])


def test_include_path_task_with_relative_data_file_resolves_against_its_folder(task_dir):
    write_mc_task(task_dir, "my_mc")
    c = load_config([*OK, f"quality.include_path=[{task_dir}]", "quality.tasks=[my_mc,llem_easy_mc]"])
    assert c.quality.tasks == ["my_mc", "llem_easy_mc"]
    from llem.config.quality_tasks import resolve_tasks

    ref = resolve_tasks(["my_mc"], [str(task_dir)])[0]
    assert ref.source == "include_path" and ref.data_files["test"] == (task_dir / "my_mc.jsonl").resolve()
    assert ref.n_docs == 6 and ref.mean_choices == 2


def test_sweep_over_quality_fields_plans_one_job_per_value(tmp_path):
    from llem.study.plan import ExecutionOptions, plan_grid, standalone_composer

    with standalone_composer(None, "config") as composer:
        plan = plan_grid([*OK, "quality.limit=10,20", "quality.tasks=[llem_easy_mc]"], composer, ExecutionOptions())
    assert [j.config.quality.limit for j in plan.jobs] == [10, 20]
    assert len({j.config_hash for j in plan.jobs}) == 2


def test_llem_config_reports_the_quality_packages():
    from llem.cli.capabilities import format_report, machine_report

    rep = machine_report()
    assert rep["quality_packages"]["lm_eval"] == "0.4.13"
    assert "quality (quality=lm_eval): lm_eval 0.4.13" in format_report(rep)


def test_lm_eval_is_pinned_once_everywhere_it_is_installed():
    """pyproject's [quality] and [dev] extras and the vLLM venv script install the same lm-eval."""
    import re

    from tests.conftest import REPO

    py = (REPO / "pyproject.toml").read_text()
    pins = set(re.findall(r'"lm-eval(?:\[hf\])?==([0-9.]+)"', py))
    script = (REPO / "scripts" / "setup-vllm-env.sh").read_text()
    assert pins == set(re.findall(r"LM_EVAL_VERSION:-([0-9.]+)", script)) == {"0.4.13"}
    assert 'quality = ["lm-eval[hf]==0.4.13"' in py
    import importlib.metadata

    assert importlib.metadata.version("lm_eval") in pins
