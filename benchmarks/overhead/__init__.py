"""Overhead: what llem costs the workload it measures, and where that comes from (see README.md)."""
