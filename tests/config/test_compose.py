"""Hydra composition into a validated config: the one-line messages for keys that do not apply."""
import pytest

from llem.config.compose import backend_section, load_config, unknown_key_message
from llem.errors import ConfigError


@pytest.mark.parametrize("overrides", [
    ["backend=pytorch", "vllm.enforce_eager=true"],
    ["vllm.enforce_eager=true"],                      # pytorch is the default backend
    ["vllm.enforce_eager=true", "backend=pytorch"],
])
def test_another_backends_key_in_a_single_run_names_both_backends(overrides):
    with pytest.raises(ConfigError) as e:
        load_config(overrides)
    assert str(e.value) == ("vllm.enforce_eager=true: applies to backend=vllm only; this run has backend=pytorch "
                            "(add backend=vllm, or leave the key out)")
    assert (e.value.field, e.value.value) == ("vllm.enforce_eager", "true")


def test_an_added_section_of_another_backend_gets_the_same_line():
    # `+` adds a `vllm:` section Hydra accepts; the run's backend refuses it
    with pytest.raises(ConfigError, match=r"^\+vllm\.enforce_eager=true: applies to backend=vllm only; "
                                          r"this run has backend=tensorrt"):
        load_config(["backend=tensorrt", "precision=fp16", "+vllm.enforce_eager=true"])


def test_the_key_of_the_runs_own_backend_still_composes():
    assert load_config(["backend=vllm", "vllm.enforce_eager=true"]).vllm.enforce_eager is True


def test_an_unknown_key_is_never_its_own_suggestion():
    # where the run's backend is not known (a search's trial), the line still says what the key is
    line = unknown_key_message("vllm.enforce_eager")
    assert "did you mean" not in line and "applies to backend=vllm only" in line
    assert "did you mean 'vllm.enforce_eager'?" in unknown_key_message("vllm.enforce_eagr")


def test_backend_section():
    assert [backend_section(o) for o in ("vllm.enforce_eager=true", "++pytorch.top_k=3", "~tensorrt", "backend=vllm",
                                         "runner.vllm=auto", "vllmx.a=1", "batch=1")] == \
        ["vllm", "pytorch", "tensorrt", None, None, None, None]
