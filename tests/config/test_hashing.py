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


def test_semantic_json_is_the_canonical_json_of_the_semantic_dict():
    # semantic_json (what the planner hashes) builds the text field by field and remembers the
    # text of scalar fields: it must stay canonical_json(semantic_dict()), on the first call and
    # on a repeat that hits what it remembered
    from llem.config.hashing import canonical_json

    configs = [ExperimentConfig(), ExperimentConfig(batch=8, seed=-3, device="cpu"),
               ExperimentConfig(backend="vllm", precision="bf16", output_len=7),
               ExperimentConfig(quality={"kind": "lm_eval", "tasks": ["llem_easy_mc"], "allow_random_weights": True, "limit": 2}),
               ExperimentConfig(dataset={"kind": "synthetic", "name": "synthétique"})]
    for c in configs * 2:
        assert c.semantic_json() == canonical_json(c.semantic_dict())
    # a section given as already known: its text is used only where the config holds that instance
    a, b = configs[0], configs[1]
    known = {"model": (a.model, "KNOWN")}
    assert '"model":KNOWN' in a.semantic_json(known)
    assert b.semantic_json(known) == canonical_json(b.semantic_dict())
