"""What this machine lets the PyTorch backend do: the one device detection shared by config
validation (:func:`check_runs_here`, before anything is written) and the backend's preflight
(after the job starts), so neither can allow what the other refuses."""
from __future__ import annotations

from llem.errors import ConfigError


def cuda_available() -> bool:
    """Whether torch in this Python sees a CUDA GPU."""
    import torch

    return torch.cuda.is_available()


def check_runs_here(cfg) -> None:
    """Checks that depend on this machine, for a job that runs in this Python (runner local):
    int8/int4 weights are quantised by bitsandbytes or torchao on a CUDA GPU only."""
    if cfg.precision in ("int8", "int4") and cfg.runner.pytorch == "local" and not cuda_available():
        raise ConfigError(f"precision={cfg.precision} needs a CUDA GPU (bitsandbytes/torchao quantisation) and "
                          "this machine has none that torch can see; allowed here: fp32, fp16, bf16",
                          field="precision", value=cfg.precision, allowed=["fp32", "fp16", "bf16"])
