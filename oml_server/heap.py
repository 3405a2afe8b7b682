"""The objects a server makes at start-up (modules, the app, its routes, SQLAlchemy's mappers
and compiled statements) live as long as the process: they are moved out of the garbage
collector's reach once, when serving starts.

Python's full collection walks every tracked object. Under load (200 clients, requests in
flight keep their objects past the young collections, so more reach the oldest generation)
one ran every few seconds and took 93-118 ms on the lab machine, a pause for every request
in flight; with the start-up objects frozen it took 4-40 ms, and the collector's share of
the server's time at 200 clients fell from 5.4-5.6 % to 2.7-3.8 % (bench/README.md, "The
collector's pauses").
"""
import gc


def freeze_startup_objects():
    """Collect what start-up left as garbage, then freeze the rest (gc.freeze): a cycle
    frozen would never be freed, so the collection comes first."""
    gc.collect()
    gc.freeze()
