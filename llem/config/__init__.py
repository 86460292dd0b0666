"""Typed experiment configuration: schema, composition from Hydra, hashing."""
from llem.config.schema import ExperimentConfig, StudyConfig

__all__ = ["ExperimentConfig", "StudyConfig"]
