"""Prefill/decode split (placeholder until the PyTorch backend work fills it in)."""
from __future__ import annotations


def measure_phases(backend, work, batches, meter, baseline, repeats, config):
    return None
