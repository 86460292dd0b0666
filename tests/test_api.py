"""The library surface: run_experiment works without Hydra and matches the CLI's result."""
import json

from llem import ExperimentConfig, ExperimentResult, StudyConfig, StudyResult, __version__, run_experiment, run_study
from llem.config.compose import load_config
from tests.conftest import FAST, run_llem


def test_public_names():
    assert callable(run_experiment) and callable(run_study)
    assert ExperimentConfig and StudyConfig and ExperimentResult and StudyResult and __version__


def test_run_experiment_without_hydra_matches_cli(tmp_path):
    cfg = ExperimentConfig.model_validate({
        "measurement": {"cycles": 2, "warmup_runs": 0, "min_window_s": 0},
        "dataset": {"kind": "synthetic", "name": "synthetic", "num_prompts": 2},
        "output_len": 4,
    })
    assert cfg.config_hash == load_config(FAST).config_hash
    res = run_experiment(cfg, tmp_path / "lib")
    assert isinstance(res, ExperimentResult) and res.status == "completed"
    on_disk = ExperimentResult.load(tmp_path / "lib" / "result.json")
    assert on_disk == res
    r = run_llem(["run", *FAST, "hydra.run.dir=cli"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cli = json.loads((tmp_path / "cli" / "result.json").read_text())
    assert cli["config_hash"] == res.config_hash
    assert cli["config"] == res.config
    assert set(cli) == set(json.loads(res.to_json()))
    assert cli["output_tokens"] == res.output_tokens
