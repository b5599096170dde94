"""fsd.app.tune_gc: what `fsd serve` does to the collector once started."""

import gc

from fsd.app import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_what_start_built_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        survivor = [{"kept": i} for i in range(100)]
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() >= len(survivor)  # in the permanent generation: never scanned again
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
