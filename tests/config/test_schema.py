"""ExperimentConfig validation without Hydra."""
import pytest

from llem import ExperimentConfig
from llem.config.compose import validate
from llem.errors import ConfigError


def test_extra_keys_forbidden_everywhere():
    for bad in ({"batchsize": 2}, {"model": {"source": "builtin", "name": "x", "architecture": "tiny", "colour": 1}},
                {"pytorch": {"num_beam": 2}}):
        with pytest.raises(ConfigError) as e:
            validate(bad)
        assert "unknown key" in str(e.value)


def test_backend_section_must_match_backend():
    with pytest.raises(ConfigError) as e:
        validate({"backend": "pytorch", "vllm": {}})
    assert "vllm" in str(e.value) and "backend=pytorch" in str(e.value)


def test_precision_cross_check():
    with pytest.raises(ConfigError) as e:
        validate({"backend": "tensorrt", "precision": "fp32"})
    assert "fp32" in str(e.value) and "tensorrt" in str(e.value)


def test_missing_section_gets_defaults():
    c = ExperimentConfig(backend="vllm", precision="bf16")
    assert c.vllm is not None and c.vllm.batching == "static"


def test_unknown_architecture_lists_allowed():
    with pytest.raises(ConfigError) as e:
        validate({"model": {"source": "no_weights", "name": "x", "architecture": "gpt-9"}})
    assert "gpt-9" in str(e.value) and "llama-3.2-1b" in str(e.value)


def test_shipped_architectures():
    from llem.models.architectures import available_architectures

    assert {"tiny", "llama-3.2-1b", "llama-3.1-8b"} <= set(available_architectures())
