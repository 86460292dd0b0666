"""PyTorch / transformers backend (``backend=pytorch``): ``PyTorchBackend`` in ``backend.py``.

``python -m llem.backends.pytorch --tp-follower`` (``__main__.py``) starts one tensor-parallel
follower process.
"""
from llem.backends.pytorch.backend import PyTorchBackend
from llem.backends.pytorch.checks import check_runs_here

__all__ = ["PyTorchBackend", "check_runs_here"]
