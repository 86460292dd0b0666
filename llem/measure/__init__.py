"""The measurement protocol (docs/measurement.md): ``harness.run`` owns the order of events;
the other modules are its steps (idle baseline, warm-up, power sampler, latency pass, phase split,
garbage-collector freeze, statistics over cycles, measurement warnings).

Kept free of imports so that ``llem.measure.stats`` can be read without loading the protocol.
"""
