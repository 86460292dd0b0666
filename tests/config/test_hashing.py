"""config_hash: changed by what affects the measurement, unchanged by where outputs go."""
from llem.config.compose import load_config
from llem.config.schema import ExperimentConfig


def h(*ov):
    return load_config(list(ov)).config_hash


def test_hash_is_sha256_and_stable():
    a, b = h(), h()
    assert a == b and len(a) == 64 and int(a, 16) >= 0


def test_output_paths_and_launcher_do_not_change_hash():
    base = h()
    assert h("hydra.run.dir=/tmp/elsewhere") == base
    assert h("hydra.sweep.dir=/tmp/sweeps", "hydra.job.chdir=true") == base
    assert h("hydra/launcher=basic") == base
    assert h("runner.pytorch=venv:/opt/venv") == base


def test_measurement_affecting_fields_change_hash():
    base = h()
    changed = [h("batch=2"), h("precision=bf16"), h("model=llama-3.2-1b"), h("output_len=33"),
               h("dataset.input_len=64"), h("energy=none"), h("measurement.cycles=7"),
               h("pytorch.attn_implementation=eager"), h("seed=1")]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_library_config_equals_composed_default():
    # The library's defaults and the shipped YAML describe the same default experiment.
    assert ExperimentConfig().config_hash == load_config([]).config_hash
