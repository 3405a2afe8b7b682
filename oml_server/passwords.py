"""Password hashing off the gevent hub, on at most PASSWORD_HASH_THREADS threads.

scrypt costs ~100 ms of CPU by design. Run on the hub, it would freeze every greenlet of the
process (requests and the ARI engine's event handling) for that long on each login; run in a
thread pool, only the greenlet that asked waits (hashlib releases the GIL while it hashes).
The pool is small on purpose (1 thread by default) and its threads run at the lowest CPU
priority: a burst of logins queues behind one core instead of taking every core from the
calls (and from Asterisk, on a shared machine), and one process hashes ~10 passwords a second.
Raise PASSWORD_HASH_THREADS on machines with cores to spare.
"""
import os
import threading

from gevent.threadpool import ThreadPool
from werkzeug.security import check_password_hash, generate_password_hash

_pool = None


def _threads():
    try:
        from flask import current_app
        return int(current_app.config.get("PASSWORD_HASH_THREADS", 1))
    except RuntimeError:  # no application (a script): the environment says
        return int(os.environ.get("PASSWORD_HASH_THREADS") or 1)


_niced = threading.local()


def _at_low_priority(function, args):
    """Run in a pool thread that the kernel schedules after everything else (nice 19, Linux
    threads have their own): a login may wait for a core, a call never waits for a login."""
    if not getattr(_niced, "done", False):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass  # not Linux, or not allowed: the pool's size still bounds it
        _niced.done = True
    return function(*args)


def _off_hub(function, *args):
    global _pool
    if _pool is None:
        _pool = ThreadPool(max(1, _threads()))
    return _pool.apply(_at_low_priority, (function, args))


def hash_password(password, method):
    return _off_hub(generate_password_hash, password, method)


def check_password(password_hash, password):
    return _off_hub(check_password_hash, password_hash, password)
