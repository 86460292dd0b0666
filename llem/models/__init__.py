"""Model sources: built-in tiny model, no_weights architectures, local, GGUF, hub."""
