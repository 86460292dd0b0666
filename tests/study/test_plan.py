"""Grid planning: Hydra's sweep syntax, validation of every job, fast composition, ordering."""
import pytest

from llem.errors import ConfigError
from llem.study.plan import ExecutionOptions, design_hash, expand_grid, order_jobs, plan_grid, standalone_composer


@pytest.fixture(scope="module")
def composer():
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
