"""Start-up objects are frozen out of the collector's walks, after start-up's garbage is
collected (oml_server/heap.py)."""
import gc
import weakref

from oml_server.heap import freeze_startup_objects


class Node:
    pass


def test_start_up_garbage_is_freed_before_the_rest_is_frozen():
    cycle = Node()
    cycle.self = cycle
    gone = weakref.ref(cycle)
    kept = Node()
    del cycle
    try:
        freeze_startup_objects()
        assert gone() is None          # frozen, the cycle would have lived as long as the process
        assert gc.get_freeze_count() > 0
        assert kept is not None
    finally:
        gc.unfreeze()   # the test process goes on collecting as before
