"""Grid planning: Hydra's sweep syntax, validation of every job, fast composition, ordering."""
import pytest

from llem.errors import ConfigError
from llem.study.plan import ExecutionOptions, design_hash, expand_grid, order_jobs, plan_grid, standalone_composer


@pytest.fixture
def composer():
    # one per test: tests that open their own (a crafted config tree) need Hydra's global state free
    with standalone_composer() as c:
        yield c


def test_expand_grid_is_the_cartesian_product_in_hydra_order():
    grid = expand_grid(["batch=1,8", "precision=fp32,bf16", "output_len=4"])
    assert grid == [["batch=1", "precision=fp32", "output_len=4"], ["batch=1", "precision=bf16", "output_len=4"],
                    ["batch=8", "precision=fp32", "output_len=4"], ["batch=8", "precision=bf16", "output_len=4"]]
    assert len(expand_grid(["batch=range(1,5)"])) == 4


@pytest.mark.parametrize("grid", [
    ["batch=1,4", "precision=bf16", "model=tiny,llama-3.2-1b", "pytorch.do_sample=true", "pytorch.top_k=5", "dataset.num_prompts=3"],
    # add / force-add / dict values / nested keys: these take the OmegaConf path
    ["+pytorch.extra_generate_kwargs.renormalize_logits=true", "batch=2,3"],
    ["++pytorch.extra_generate_kwargs={renormalize_logits:true},{}", "energy=none,auto"],
    ["measurement={cycles:3},{cycles:4,warmup_runs:0}", "seed=1,2"],
    # sections shared with the base and sections an override touches, quality on (part of the
    # hash), another backend's section, a non-ASCII value (escaped in the canonical JSON)
    ["quality=lm_eval", "quality.allow_random_weights=true", "quality.limit=5,6", "batch=1,2", 'dataset.name="synthétique"'],
    ["backend=vllm", "vllm.max_num_seqs=8,16", "output_len=4,5"],
])
def test_fast_composition_equals_a_full_compose(grid):
    from llem.config.compose import load_config

    with standalone_composer() as c:
        plan = plan_grid(grid, c, ExecutionOptions())
        assert len(plan.points) == len(expand_grid(grid))
        assert [c.compose_full(p.overrides).config_hash for p in plan.points] == [p.config_hash for p in plan.points]
    for p in plan.points:
        # the reference: a fresh, independent Hydra compose of this job alone (what `llem run` does)
        full = load_config(p.overrides)
        assert p.config == full
        assert p.config_hash == full.config_hash


def test_one_compose_per_combination_of_group_choices(composer):
    before = composer.full_composes
    plan = plan_grid(["batch=1,2,3,4,5", "output_len=4,8", "precision=fp16,bf16"], composer, ExecutionOptions())
    assert len(plan.points) == 20
    assert composer.full_composes - before <= 2  # one per precision (cached across calls)
    assert len({p.config_hash for p in plan.points}) == 20


# --- combinations of group choices from single-group composes --------------------------------

def _shipped_groups() -> dict[str, list[str]]:
    from llem.config.compose import conf_dir

    root = conf_dir()
    return {g.name: sorted(p.stem for p in g.glob("*.yaml"))
            for g in sorted(root.iterdir()) if g.is_dir() and g.name != "hydra"}


def _pairwise(groups: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """Combinations in which every pair of options of two groups occurs at least once (greedy),
    each a tuple of overrides in the groups' order; the first is every group's first option."""
    names = list(groups)
    todo = {(a, x, b, y) for i, a in enumerate(names) for b in names[i + 1:] for x in groups[a] for y in groups[b]}
    rows = [tuple(groups[g][0] for g in names)]
    while True:
        for r in rows:
            todo -= {(a, r[i], b, r[j]) for i, a in enumerate(names) for j, b in enumerate(names) if i < j}
        if not todo:
            break
        a, x, b, y = min(todo)
        row = {a: x, b: y}
        for g in names:
            if g not in row:  # the option that covers most of what is left
                row[g] = max(groups[g], key=lambda o: sum(
                    (min(g, h), o if g < h else row[h], max(g, h), row[h] if g < h else o) in todo
                    for h in row))
        rows.append(tuple(row[g] for g in names))
    return [tuple(f"{g}={o}" for g, o in zip(names, r)) for r in rows]


def _assert_combinations_equal_full_composes(c, combos) -> None:
    import json

    bases = {t: c._base(t) for t in combos}  # the planner's path: combined where it can be
    for t, base in bases.items():
        cfg, plain, _ = c._compose_full(list(t))  # the reference: a full Hydra compose of this combination
        assert plain is not None and base.plain is not None, t
        # byte for byte, key order included
        assert json.dumps(base.plain) == json.dumps(plain), t


def test_combinations_of_shipped_groups_from_single_group_composes():
    # every pair of options of every two shipped groups, each combination checked against a full
    # compose of its own (the exhaustive product is the slow test below)
    groups = _shipped_groups()
    assert {"backend", "model", "precision", "dataset", "energy", "quality"} <= set(groups)
    combos = _pairwise(groups)
    with standalone_composer() as c:
        for t in combos:
            c._base(t)
        # Hydra composes grow with the sum of the groups' options, not their product
        assert c.full_composes <= 1 + sum(len(o) - 1 for o in groups.values()) < len(combos)
        # composed in full: the first combination and those that change one group from it
        own = sum(1 for t in combos if sum(a != b for a, b in zip(t, combos[0])) <= 1)
        assert c.combined == len(combos) - own
        _assert_combinations_equal_full_composes(c, combos)


@pytest.mark.slow
def test_combinations_of_all_shipped_groups_equal_full_composes():
    # The product of every shipped group's options (2,592 combinations) takes about 10 minutes on
    # 2 cores with a full reference compose each: the suite checks a seeded sample of 120 of them,
    # LLEM_EXHAUSTIVE=1 checks them all.
    import itertools
    import os
    import random

    groups = _shipped_groups()
    combos = [tuple(f"{g}={o}" for g, o in zip(groups, r)) for r in itertools.product(*groups.values())]
    if os.environ.get("LLEM_EXHAUSTIVE") != "1":
        combos = [combos[0]] + random.Random(0).sample(combos[1:], 120)
    with standalone_composer() as c:
        for t in combos:
            c._base(t)
        assert c.full_composes <= 1 + sum(len(o) - 1 for o in groups.values())
        assert c.combined >= len(combos) - c.full_composes
        _assert_combinations_equal_full_composes(c, combos)


def test_a_grid_over_several_groups_equals_full_composes():
    grid = ["model=tiny,llama-3.2-1b", "precision=fp32,bf16", "energy=none,auto", "dataset.num_prompts=3",
            "batch=1,2"]
    with standalone_composer() as c:
        plan = plan_grid(grid, c, ExecutionOptions())
        assert c.combined == 4  # of the 8 combinations: all but the first and the three single-group changes
        for p in plan.points:
            full = c.compose_full(p.overrides)
            assert p.config == full and p.config_hash == full.config_hash


def _crafted(tmp_path, edits: dict[str, str]) -> str:
    """A copy of the shipped config tree with these files written (path -> text)."""
    import shutil

    from llem.config.compose import conf_dir

    root = tmp_path / "conf"
    shutil.copytree(conf_dir(), root)
    for rel, text in edits.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return str(root)


_SYNTHETIC = "kind: synthetic\nname: synthetic\npath: null\nsubset: null\nsplit: null\ntext_field: text\n" \
             "num_prompts: {n}\ninput_len: 32\norder: sequential\nseed: 0\n"


def _primary_with(defaults_line: str) -> str:
    from llem.config.compose import conf_dir

    text = (conf_dir() / "config.yaml").read_text()
    assert "  - quality: none\n" in text
    return text.replace("  - quality: none\n", f"  - quality: none\n  {defaults_line}\n", 1)


@pytest.mark.parametrize("edits,grid", [
    # a dataset option (merged after precision) that also writes precision, with the very value
    # the first combination has: comparing single-group composes with the first one shows no
    # difference in precision, yet the full compose of dataset=pinned precision=bf16 gives fp32
    ({"dataset/pinned.yaml": "# @package _global_\ndataset:\n" + "".join("  " + line + "\n" for line in
                                                                     _SYNTHETIC.format(n=3).splitlines())
      + "precision: fp32\n"},
     ["dataset=synthetic,pinned", "precision=fp32,bf16", "batch=1,2"]),
    # an option whose package is not its group: it writes where another group writes
    ({"model/into_dataset.yaml": "# @package dataset\nnum_prompts: 5\n"},
     ["model=tiny,into_dataset", "dataset=synthetic,builtin", "batch=1,2"]),
    # an option that also writes a key of the primary config (merged after it, so the
    # primary's seed wins): the plan takes no chances with keys two configs write
    ({"model/seeded.yaml": "# @package _global_\nmodel:\n  source: builtin\n  name: tiny-llama\n"
      "  architecture: tiny\n  tokenizer: builtin\nseed: 5\n"},
     ["model=tiny,seeded", "precision=fp32,bf16", "batch=1,2"]),
    # an interpolated entry of the primary defaults list: the dataset follows the precision chosen
    ({"dataset/fp32.yaml": _SYNTHETIC.format(n=3), "dataset/bf16.yaml": _SYNTHETIC.format(n=5),
      "config.yaml": _primary_with("- override dataset: ${precision}")},
     ["model=tiny,llama-3.2-1b", "precision=fp32,bf16", "batch=1,2"]),
    # an optional specialised entry: present for one model only
    ({"tune/tiny.yaml": "# @package measurement\ncycles: 3\n",
      "config.yaml": _primary_with("- optional tune: ${model}")},
     ["model=tiny,llama-3.2-1b", "precision=fp32,bf16", "batch=1,2"]),
    # an interpolation in a value: the plan takes Hydra's own override path
    ({"dataset/synthetic.yaml": _SYNTHETIC.format(n=3).replace("name: synthetic", "name: ds-${precision}")},
     ["model=tiny,llama-3.2-1b", "precision=fp32,bf16", "batch=1,2"]),
])
def test_user_config_dirs_that_need_full_composes(tmp_path, edits, grid):
    config_dir = _crafted(tmp_path, edits)
    with standalone_composer(config_dir) as c:
        plan = plan_grid(grid, c, ExecutionOptions())
        assert c.combined == 0  # every combination composed in full
        assert c.full_composes == len(plan.points) // 2
        for p in plan.points:
            full = c.compose_full(p.overrides)
            assert p.config == full and p.config_hash == full.config_hash


def test_a_crafted_tree_gives_what_its_full_compose_gives(tmp_path):
    # the first case above, by value: the later group's precision wins
    config_dir = _crafted(tmp_path, {"dataset/pinned.yaml": "# @package _global_\ndataset:\n" + "".join(
        "  " + line + "\n" for line in _SYNTHETIC.format(n=3).splitlines()) + "precision: fp32\n"})
    with standalone_composer(config_dir) as c:
        plan = plan_grid(["dataset=synthetic,pinned", "precision=fp32,bf16"], c, ExecutionOptions())
    assert [(p.config.dataset.num_prompts, p.config.precision) for p in plan.points] == \
        [(8, "fp32"), (8, "bf16"), (3, "fp32"), (3, "fp32")]


def test_a_deleted_group_is_composed_in_full():
    with standalone_composer() as c:
        plan = plan_grid(["~quality", "model=tiny,llama-3.2-1b", "precision=fp32,bf16"], c, ExecutionOptions())
        assert c.combined == 0 and c.full_composes == len(plan.points) == 4
        for p in plan.points:
            assert p.config_hash == c.compose_full(p.overrides).config_hash


def test_only_plain_group_choices_are_combined(composer):
    assert composer._group_choices(("model=tiny", "precision=bf16")) == (("model", "tiny"), ("precision", "bf16"))
    for t in [("+quality=lm_eval", "model=tiny"), ("~quality", "model=tiny"), ("energy@energy=none", "model=tiny"),
              ("model=[tiny,llama-3.2-1b]", "precision=bf16"), ("model=tiny", "model=llama-3.2-1b")]:
        assert composer._group_choices(t) is None, t


def test_a_missing_value_is_refused_as_a_full_compose_refuses_it(composer, tmp_path):
    # model=local marks model.path missing (???): the plan names it as `llem run` does
    with pytest.raises(ConfigError, match=r"^job 0 \(model=local batch=1\): model\.path: a required value is missing"):
        plan_grid(["model=local", "batch=1,2"], composer, ExecutionOptions())
    with pytest.raises(ConfigError, match="model.path: a required value is missing"):
        composer.compose_full(["model=local"])
    # given a value, the job takes the fast path as before
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(28))
    plan = plan_grid(["model=gguf", f"model.path={gguf}", "batch=1,2"], composer, ExecutionOptions())
    assert [p.config.model.path for p in plan.points] == [str(gguf)] * 2
    assert [p.config_hash for p in plan.points] == [composer.compose_full(p.overrides).config_hash for p in plan.points]


def test_one_invalid_grid_point_names_the_job(composer):
    with pytest.raises(ConfigError) as e:
        plan_grid(["batch=1,0", "output_len=4"], composer, ExecutionOptions())
    msg = str(e.value)
    assert msg.startswith("job 1 (batch=0 output_len=4)") and "batch=0" in msg and "greater than 0" in msg


def test_unknown_group_option_and_unknown_key(composer):
    with pytest.raises(ConfigError, match="precision='fp64' is not an option.*allowed: .*bf16"):
        plan_grid(["precision=fp32,fp64"], composer, ExecutionOptions())
    with pytest.raises(ConfigError, match="bacth: unknown key"):
        plan_grid(["bacth=1,2"], composer, ExecutionOptions())


def test_cross_field_error_in_one_combination(composer):
    # tensorrt cannot run fp32: only that combination of the grid is invalid
    with pytest.raises(ConfigError, match=r"job 2 \(backend=tensorrt precision=fp32\).*precision='fp32'"):
        plan_grid(["backend=pytorch,tensorrt", "precision=fp32,fp16"], composer, ExecutionOptions())


def _points(n):
    from llem.study.plan import GridPoint

    return [GridPoint(i, [f"batch={i + 1}"], None, f"h{i}") for i in range(n)]


def test_orders_and_grid_cycles():
    pts = _points(3)
    seq = order_jobs(pts, ExecutionOptions(grid_cycles=2, order="sequential"))
    assert [(j.point.grid_index, j.cycle) for j in seq] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert [j.job_id for j in seq][:2] == ["0000_c0", "0000_c1"]
    inter = order_jobs(pts, ExecutionOptions(grid_cycles=2, order="interleaved"))
    assert [(j.point.grid_index, j.cycle) for j in inter] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    sh = [(j.point.grid_index, j.cycle) for j in order_jobs(_points(8), ExecutionOptions(grid_cycles=2, order="shuffled", shuffle_seed=3))]
    again = [(j.point.grid_index, j.cycle) for j in order_jobs(_points(8), ExecutionOptions(grid_cycles=2, order="shuffled", shuffle_seed=3))]
    other = [(j.point.grid_index, j.cycle) for j in order_jobs(_points(8), ExecutionOptions(grid_cycles=2, order="shuffled", shuffle_seed=4))]
    assert sh == again and sh != other and sorted(sh) == sorted(p for p in [(i, c) for i in range(8) for c in range(2)])
    assert [j.index for j in inter] == list(range(6))
    # one grid cycle: plain ids
    assert order_jobs(pts, ExecutionOptions())[2].job_id == "0002"


def test_bad_execution_options():
    with pytest.raises(ConfigError, match="hydra.sweeper.order='random'.*allowed: sequential, interleaved, shuffled"):
        ExecutionOptions(order="random")
    with pytest.raises(ConfigError, match="grid_cycles=0"):
        ExecutionOptions(grid_cycles=0)
    with pytest.raises(ConfigError, match="cooldown_s=-1"):
        ExecutionOptions(cooldown_s=-1)


def test_design_hash_ignores_job_order_but_not_execution_options():
    ex = ExecutionOptions()
    assert design_hash(["a", "b"], ex) == design_hash(["b", "a"], ex)
    assert design_hash(["a", "b"], ex) != design_hash(["a", "c"], ex)
    assert design_hash(["a", "b"], ex) != design_hash(["a", "b"], ExecutionOptions(cooldown_s=5))
    assert design_hash(["a", "b"], ex) != design_hash(["a", "b"], ExecutionOptions(grid_cycles=2))


# --- a backend's own section in a grid of several backends -----------------------------------

def test_a_backend_section_applies_to_that_backends_jobs_only():
    from llem.config.compose import load_config

    with standalone_composer() as c:
        plan = plan_grid(["backend=vllm,pytorch", "batch=1,8", "vllm.enforce_eager=true"], c, ExecutionOptions())
    with standalone_composer() as c:
        without = plan_grid(["backend=vllm,pytorch", "batch=1,8"], c, ExecutionOptions())
    by = {(p.config.backend, p.config.batch): p for p in plan.points}
    ref = {(p.config.backend, p.config.batch): p for p in without.points}
    assert sorted(by) == sorted(ref) == [("pytorch", 1), ("pytorch", 8), ("vllm", 1), ("vllm", 8)]
    for b in (1, 8):
        v, pt = by[("vllm", b)], by[("pytorch", b)]
        assert "vllm.enforce_eager=true" in v.overrides and v.omitted == []
        assert v.config.vllm.enforce_eager is True and v.config_hash != ref[("vllm", b)].config_hash
        # the PyTorch job is the job of the grid without the key: overrides, config, config_hash
        assert pt.overrides == ref[("pytorch", b)].overrides and pt.omitted == ["vllm.enforce_eager=true"]
        assert pt.config == ref[("pytorch", b)].config and pt.config_hash == ref[("pytorch", b)].config_hash
    for p in plan.points:
        # what a single `llem run` of the job's overrides composes
        assert p.config_hash == load_config(p.overrides).config_hash
    assert plan.backend_only == {"vllm.enforce_eager=true": "vllm"} and plan.merged_points == 0


def test_the_manifest_and_plan_record_which_jobs_left_a_section_out(composer, tmp_path):
    from llem.cli.study import changed_jobs
    from llem.study import engine
    from llem.study.manifest import StudyPlanRecord

    args = ["backend=vllm,pytorch", "batch=1,8", "vllm.enforce_eager=true", "pytorch.attn_implementation=sdpa"]
    plan = plan_grid(args, composer, ExecutionOptions())
    run = engine.StudyRun(plan=plan, study_dir=tmp_path, study_name="s", launcher_name="local")
    m = engine.new_manifest(run)
    seen = {(e.backend, e.batch): (e.overrides, e.omitted_overrides) for e in m.jobs}
    assert seen[("vllm", 1)] == (["backend=vllm", "batch=1", "vllm.enforce_eager=true"],
                                 ["pytorch.attn_implementation=sdpa"])
    assert seen[("pytorch", 8)] == (["backend=pytorch", "batch=8", "pytorch.attn_implementation=sdpa"],
                                    ["vllm.enforce_eager=true"])
    record = StudyPlanRecord.from_manifest(m)
    assert [j.omitted_overrides for j in record.jobs] == [e.omitted_overrides for e in m.jobs]
    assert [j.omitted_overrides for j in record.to_manifest(tmp_path).jobs] == [e.omitted_overrides for e in m.jobs]
    # a resume plans the same jobs again: nothing changed
    assert changed_jobs(m, plan_grid(args, composer, ExecutionOptions())) == []


def test_a_swept_section_does_not_repeat_the_other_backends_jobs(composer):
    plan = plan_grid(["backend=vllm,pytorch", "vllm.max_num_seqs=8,16", "batch=1"], composer, ExecutionOptions())
    assert [(p.grid_index, p.config.backend, p.overrides) for p in plan.points] == [
        (0, "vllm", ["backend=vllm", "vllm.max_num_seqs=8", "batch=1"]),
        (1, "vllm", ["backend=vllm", "vllm.max_num_seqs=16", "batch=1"]),
        (2, "pytorch", ["backend=pytorch", "batch=1"])]
    assert plan.points[2].omitted == ["vllm.max_num_seqs=8", "vllm.max_num_seqs=16"]
    assert plan.merged_points == 1 and [j.job_id for j in plan.jobs] == ["0000", "0001", "0002"]


def test_a_section_no_job_of_the_grid_takes_is_refused(composer):
    with pytest.raises(ConfigError) as e:
        plan_grid(["backend=pytorch", "batch=1,8", "vllm.enforce_eager=true"], composer, ExecutionOptions())
    assert str(e.value) == ("vllm.enforce_eager=true: applies to backend=vllm only; this grid has backend=pytorch "
                            "(add vllm to the grid: backend=pytorch,vllm, or leave the key out)")
    assert (e.value.field, e.value.value) == ("vllm.enforce_eager", "true")
    with pytest.raises(ConfigError, match=r"^tensorrt\.max_batch_size=4,8: applies to backend=tensorrt only; "
                                          r"this grid has backend=pytorch,vllm "):
        plan_grid(["backend=vllm,pytorch", "tensorrt.max_batch_size=4,8"], composer, ExecutionOptions())


def test_a_misspelt_section_key_is_still_unknown_to_its_backends_jobs(composer):
    with pytest.raises(ConfigError, match=r"^job 0 \(backend=vllm vllm\.enforce_eagr=true\): vllm\.enforce_eagr: "
                                          r"unknown key \(did you mean 'vllm\.enforce_eager'\?\)"):
        plan_grid(["backend=vllm,pytorch", "vllm.enforce_eagr=true"], composer, ExecutionOptions())


def test_a_job_composed_with_another_backends_key_names_both(composer):
    # a search composes its trials as they come (no grid to leave the key out of): one clear line
    for key in ("vllm.enforce_eager=true", "+vllm.extra_engine_args.foo=1"):
        with pytest.raises(ConfigError) as e:
            composer.compose(["backend=pytorch", key])
        assert str(e.value) == (f"{key}: applies to backend=vllm only; this job has backend=pytorch "
                                "(add backend=vllm, or leave the key out)")
