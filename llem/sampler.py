"""Power/temperature/clock sampler that runs beside the measured windows (placeholder: no GPU)."""
from __future__ import annotations


class Sampler:
    def __init__(self, devices, interval_s, t0: float) -> None:
        self.devices = devices
        self.interval_s = interval_s
        self.t0 = t0
        self.rows: list[dict] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def has_data(self) -> bool:
        return bool(self.rows)

    def write_parquet(self, path):
        import pandas as pd

        pd.DataFrame(self.rows).to_parquet(path)
        return path
