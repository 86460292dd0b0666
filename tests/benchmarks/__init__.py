"""Tests of the scripts under benchmarks/ (their CPU modes, parsing and statistics)."""
