import pytest

from llem.devices import resolve_devices
from tests.devices.sim import UUIDS, gpu, use_sim


@pytest.fixture
def three(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0), gpu(1), gpu(2)])


def test_indices_map_in_cuda_order_and_ignore_other_gpus(three, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    ds = resolve_devices()
    assert [d.uuid for d in ds] == [UUIDS[2], UUIDS[0]]
    assert [d.cuda_index for d in ds] == [0, 1]
    assert [d.index for d in ds] == [2, 0]
    assert ds.mapping["ignored_gpus"] == [UUIDS[1]]
    assert ds.gpus[0].handle.uuid == UUIDS[2]  # handle looked up by UUID


def test_uuids_full_and_prefix(three):
    ds = resolve_devices(f"{UUIDS[1]},GPU-3333")
    assert [d.uuid for d in ds] == [UUIDS[1], UUIDS[2]]
    assert not resolve_devices("GPU-")  # ambiguous prefix: invalid, as in CUDA


def test_invalid_entry_hides_the_rest_like_cuda(three):
    assert [d.uuid for d in resolve_devices("1,7,0")] == [UUIDS[1]]
    empty = resolve_devices("")
    assert not empty and empty.unavailable_reason == "no GPU visible to this job"


def test_unset_means_all(three):
    assert len(resolve_devices()) == 3


def test_mixed_models_by_index_warn(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0), gpu(1, name="Simulated A100")])
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    assert "CUDA_DEVICE_ORDER" in resolve_devices("1").mapping["warning"]
    assert "warning" not in resolve_devices(UUIDS[1]).mapping


def test_no_nvml(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [], fail_init=True)
    ds = resolve_devices()
    assert not ds and "NVML" in ds.unavailable_reason


def test_a_single_gpu_job_counts_only_its_gpu(three, monkeypatch):
    from llem.config.compose import load_config
    from llem.devices import select_for_job

    ds = select_for_job(resolve_devices(), load_config(["device=auto"]))
    assert [d.uuid for d in ds] == [UUIDS[0]] and set(ds.mapping["ignored_gpus"]) == {UUIDS[1], UUIDS[2]}
    ds = select_for_job(resolve_devices(), load_config(["device=cuda:2"]))
    assert [d.uuid for d in ds] == [UUIDS[2]]
    assert not select_for_job(resolve_devices(), load_config(["device=cuda:5"]))
    spread = select_for_job(resolve_devices(), load_config(["+pytorch.device_map=auto"]))
    assert len(spread) == 3
    # transformers tensor parallelism: every visible GPU runs a rank, or exactly tp_size of them
    # (an H100 x2 run counted only GPU 0 before this: the harness's occupancy warning caught it)
    assert len(select_for_job(resolve_devices(), load_config(["pytorch.tp_plan=auto"]))) == 3
    tp2 = select_for_job(resolve_devices(), load_config(["pytorch.tp_plan=auto", "pytorch.tp_size=2"]))
    assert [d.uuid for d in tp2] == UUIDS[:2]
    # vLLM: tensor x pipeline ranks, one GPU each
    vl = select_for_job(resolve_devices(), load_config(["backend=vllm", "vllm.tensor_parallel_size=1",
                                                        "+vllm.pipeline_parallel_size=3"]))
    assert len(vl) == 3
