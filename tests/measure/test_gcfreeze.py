"""The heap frozen before the measured windows (llem/measure/gcfreeze.py), and released on every exit."""
import gc

import pytest

from llem.config.compose import load_config
from llem.measure import gcfreeze, harness
from tests.conftest import FAST


@pytest.fixture(autouse=True)
def _unfrozen():
    gcfreeze.release()
    yield
    gcfreeze.release()


def test_freeze_moves_the_heap_out_of_collections_and_release_restores_it():
    heap = gcfreeze.FrozenHeap(True)
    heap.freeze()
    assert gc.get_freeze_count() > 1000 and heap.frozen_objects == gc.get_freeze_count()
    assert heap.describe()["frozen_before_llem"] == 0
    assert heap.collect_s is not None and heap.collect_s >= 0
    gc.collect()  # a full collection now walks only what was made since
    heap.mark_end()
    d = heap.describe()
    assert d["gc_freeze"] is True and d["collections_during_measured_cycles"]["gen2"] >= 1
    gcfreeze.release()
    assert gc.get_freeze_count() == 0
    gcfreeze.release()  # idempotent: nothing left to unfreeze
    assert gc.get_freeze_count() == 0


def test_disabled_freezes_nothing_but_still_counts_collections():
    heap = gcfreeze.FrozenHeap(False)
    heap.freeze()
    assert gc.get_freeze_count() == 0
    gc.collect()
    heap.mark_end()
    d = heap.describe()
    assert d["gc_freeze"] is False and d["frozen_objects"] is None and d["collect_before_freeze_s"] is None
    assert d["collections_during_measured_cycles"]["gen2"] >= 1


def test_a_freeze_the_caller_made_is_left_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        gcfreeze.release()
        assert gc.get_freeze_count() == frozen
        # llem freezing on top of it must not unfreeze the caller's objects when it is done
        heap = gcfreeze.FrozenHeap(True)
        heap.freeze()
        assert heap.describe()["frozen_before_llem"] == frozen and heap.frozen_objects >= frozen
        gcfreeze.release()
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


@pytest.mark.slow
def test_a_run_records_the_freeze_and_leaves_the_heap_unfrozen(tmp_path):
    r = harness.run(load_config([*FAST, "energy=none"]), tmp_path / "j")
    g = r.measurement_methodology["gc"]
    assert g["gc_freeze"] is True and g["frozen_objects"] > 1000
    assert g["workers_frozen_objects"] is None  # one process: nothing else to freeze
    assert set(g["collections_during_measured_cycles"]) == {"gen0", "gen1", "gen2"}
    assert gc.get_freeze_count() == 0


@pytest.mark.slow
def test_gc_freeze_off_is_recorded(tmp_path):
    r = harness.run(load_config([*FAST, "energy=none", "measurement.gc_freeze=false"]), tmp_path / "j")
    g = r.measurement_methodology["gc"]
    assert g["gc_freeze"] is False and g["frozen_objects"] is None
    assert g["collections_during_measured_cycles"] is not None


@pytest.mark.slow
def test_a_failed_run_leaves_the_heap_unfrozen(monkeypatch, tmp_path):
    from llem.backends.pytorch import PyTorchBackend

    calls = {"n": 0}
    orig = PyTorchBackend.generate

    def fail_in_the_windows(self, batch, **kw):
        # one warm-up call runs before the freeze; the first call after it is inside the first window
        if gc.get_freeze_count():
            raise RuntimeError("generate failed inside a measured window")
        calls["n"] += 1
        return orig(self, batch, **kw)

    monkeypatch.setattr(PyTorchBackend, "generate", fail_in_the_windows)
    with pytest.raises(RuntimeError, match="inside a measured window"):
        harness.run(load_config([*FAST, "energy=none", "measurement.warmup_runs=1", "measurement.warmup_min_s=0"]),
                    tmp_path / "j")
    assert gc.get_freeze_count() == 0 and calls["n"] == 1
