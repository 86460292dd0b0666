from llem.devices import DeviceSet, resolve_devices
from llem.environment.snapshot import snapshot
from tests.devices.sim import UUIDS, gpu, use_sim


def test_gpu_facts_for_the_jobs_gpus_only(monkeypatch, tmp_path):
    use_sim(monkeypatch, tmp_path, [gpu(0, power_limit_w=500, default_power_limit_w=700, persistence=False,
                                        mig=False, ecc=True, compute_capability=[9, 0], memory_total_mib=81559,
                                        processes=[{"pid": 4242, "used_memory_mib": 300}]), gpu(1)],
            driver_version="580.159.04", cuda_driver_version=13000)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    env = snapshot(resolve_devices())
    assert env["driver_version"] == "580.159.04" and env["cuda_driver_version"] == "13.0"
    assert [g["uuid"] for g in env["gpus"]] == [UUIDS[0]]
    g = env["gpus"][0]
    assert (g["power_limit_w"], g["default_power_limit_w"], g["persistence_mode"], g["mig_mode"], g["ecc_mode"],
            g["compute_capability"], g["memory_total_mib"], g["energy_counter"]) == \
        (500.0, 700.0, False, False, True, "9.0", 81559.0, True)
    assert g["processes"] == [{"pid": 4242, "used_memory_mib": 300.0}]
    assert g["sm_clock_mhz"] and g["temperature_c"] is not None
    assert any("simulated" in e for e in env["errors"])
    assert "77" in str(env["slurm"])


def test_host_facts_without_gpu():
    env = snapshot(DeviceSet(unavailable_reason="device=cpu"))
    assert env["gpus"] == [] and env["gpu_unavailable_reason"] == "device=cpu"
    assert env["cpu_count"] >= 1 and env["ram_gib"] > 0 and env["kernel"]
    # the boot id tells machines apart where every VM has the same host name
    assert env["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
    assert set(env["packages"]) >= {"llem", "torch", "transformers", "vllm", "zeus", "codecarbon"}
    assert env["packages"]["torch"] is not None
    assert set(env["container"]) >= {"dockerenv", "cgroup", "in_container"}
