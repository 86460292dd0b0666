"""The dry run's GPU memory estimate."""
from llem.config.compose import load_config
from llem.models.architectures import load_architecture
from llem.study.memory import GIB, estimate, fits, parameter_count


def test_parameter_counts_match_the_published_sizes():
    # published: Llama-3.2-1B 1.24B, Llama-3.1-8B 8.03B, Mistral-7B 7.25B, Qwen2.5-7B 7.62B
    for arch, billions in (("llama-3.2-1b", 1.24), ("llama-3.1-8b", 8.03), ("mistral-7b", 7.25), ("qwen2.5-7b", 7.62)):
        assert abs(parameter_count(load_architecture(arch)) / 1e9 - billions) < 0.01, arch


def test_estimate_grows_with_batch_and_precision():
    small = estimate(load_config(["model=llama-3.1-8b", "precision=bf16", "batch=1"]))
    big = estimate(load_config(["model=llama-3.1-8b", "precision=bf16", "batch=64"]))
    fp32 = estimate(load_config(["model=llama-3.1-8b", "precision=fp32", "batch=1"]))
    int4 = estimate(load_config(["backend=tensorrt", "model=llama-3.1-8b", "precision=int4", "batch=1"]))
    assert abs(small.weights_bytes - 2 * 8.03e9) < 0.02e9  # 8.03e9 parameters x 2 bytes
    assert big.kv_cache_bytes == 64 * small.kv_cache_bytes
    assert big.per_gpu_bytes > small.per_gpu_bytes
    assert fp32.weights_bytes == 2 * small.weights_bytes
    assert int4.weights_bytes < small.weights_bytes / 3


def test_fits_against_gpu_sizes():
    cfg = load_config(["model=llama-3.1-8b", "precision=bf16"])
    est = estimate(cfg)
    assert fits(cfg, est, [80 * GIB], None) == "yes"
    assert fits(cfg, est, [8 * GIB], None).startswith("no (")
    assert fits(cfg, est, [], "no GPU") == "no GPU"
