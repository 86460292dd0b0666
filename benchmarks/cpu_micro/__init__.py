"""CPU micro-benchmarks: targets any machine can check (see README.md)."""
