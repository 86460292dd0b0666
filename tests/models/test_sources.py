"""Model sources and shipped architectures."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from llem.config.compose import load_config
from llem.errors import ConfigError
from llem.models.architectures import available_architectures
from llem.models.offline import ensure_online, is_offline
from llem.models.sources import architecture_config, write_config_dir

# published parameter counts (model cards), in billions
PUBLISHED_B = {"llama-3.2-1b": 1.24, "llama-3.1-8b": 8.03, "qwen2.5-7b": 7.62, "mistral-7b": 7.25,
               "smollm2-135m": 0.1345}


@pytest.mark.parametrize("arch", sorted(PUBLISHED_B))
def test_shipped_architecture_builds_with_its_published_parameter_count(arch):
    cfg = load_config([f"model={arch}"])
    hf = AutoConfig.for_model(**architecture_config(cfg.model))
    with torch.device("meta"):  # shapes only: no memory, no time
        model = AutoModelForCausalLM.from_config(hf)
    n_b = sum(p.numel() for p in model.parameters()) / 1e9
    assert n_b == pytest.approx(PUBLISHED_B[arch], rel=0.01)


def test_every_architecture_has_a_conf_model_entry():
    from llem.config.compose import group_options

    assert set(available_architectures()) - {"tiny"} <= set(group_options("model"))


def test_unknown_architecture_names_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"model.architecture='gpt-9' is not shipped; allowed: .*qwen2.5-7b"):
        load_config(["model=llama-3.2-1b", "model.architecture=gpt-9"])


def test_missing_local_directory_fails_at_validation(tmp_path):
    with pytest.raises(ConfigError, match="does not exist or is not a directory"):
        load_config(["model=local", f"model.path={tmp_path / 'nope'}"])


def test_missing_gguf_file_fails_at_validation(tmp_path):
    with pytest.raises(ConfigError, match="is not an existing GGUF file"):
        load_config(["model=gguf", f"model.path={tmp_path / 'm.gguf'}"])


def test_offline_switches(monkeypatch):
    for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "LLEM_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    assert not is_offline()
    ensure_online("x")  # online: no error
    monkeypatch.setenv("LLEM_OFFLINE", "true")
    assert is_offline()
    with pytest.raises(ConfigError, match="LLEM_OFFLINE=true"):
        ensure_online("model 'a/b'")


def test_hub_id_validates_when_online(monkeypatch):
    for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "LLEM_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    assert load_config(["model=hub", "model.path=org/name"]).model.path == "org/name"


@pytest.mark.parametrize("arch", ["qwen2.5-7b", "mistral-7b"])
def test_config_only_folder_for_dummy_weight_engines(arch, tmp_path):
    cfg = load_config([f"model={arch}"])
    d = write_config_dir(cfg.model, tmp_path)
    hf = AutoConfig.from_pretrained(d)
    assert hf.num_hidden_layers == architecture_config(cfg.model)["num_hidden_layers"]
