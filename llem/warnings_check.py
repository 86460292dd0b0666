"""Warnings derived from the environment and the sampler's time series."""
from __future__ import annotations


def environment_warnings(environment: dict, sampler, config) -> list[str]:
    return []
