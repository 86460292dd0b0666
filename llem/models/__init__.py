"""Model sources: built-in tiny model, no_weights architectures, local directory, GGUF, hub id.

``sources`` knows where config, weights and tokenizer come from; ``architectures`` ships the
public architecture configs; ``offline`` decides whether the network may be touched; ``flops``
estimates what a generation costs in FLOPs from a model's shape (analytic, never measured).
"""
