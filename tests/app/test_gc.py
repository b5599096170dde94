"""fsd.app.tune_gc and tune_runtime: what `fsd serve` does to the collector and gevent once started."""

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


def test_tune_runtime_also_stops_recording_greenlet_spawn_trees():
    import gevent

    from fsd.app import tune_runtime

    before, tree = gc.get_threshold(), gevent.config.track_greenlet_tree
    try:
        assert gevent.spawn(lambda: None).spawning_stack is not None  # gevent's default
        tune_runtime()
        assert gc.get_threshold() == GC_THRESHOLDS
        g = gevent.spawn(lambda: 42)
        assert g.spawning_stack is None and g.spawning_greenlet is None
        assert g.get(timeout=5) == 42
    finally:
        gevent.config.track_greenlet_tree = tree
        gc.unfreeze()
        gc.set_threshold(*before)
