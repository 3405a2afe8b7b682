"""Password hashing off the gevent hub, on at most PASSWORD_HASH_THREADS threads.

scrypt costs ~100 ms of CPU by design. Run on the hub, it would freeze every greenlet of the
process (requests and the ARI engine's event handling) for that long on each login; run in a
thread pool, only the greenlet that asked waits (hashlib releases the GIL while it hashes).
The pool is small on purpose (1 thread by default): a burst of logins then queues behind one
core instead of taking every core from the calls, and one process hashes ~10 passwords a
second. Raise it on machines with cores to spare.
"""
import os

from gevent.threadpool import ThreadPool
from werkzeug.security import check_password_hash, generate_password_hash

_pool = None


def _threads():
    try:
        from flask import current_app
        return int(current_app.config.get("PASSWORD_HASH_THREADS", 1))
    except RuntimeError:  # no application (a script): the environment says
        return int(os.environ.get("PASSWORD_HASH_THREADS") or 1)


def _off_hub(function, *args):
    global _pool
    if _pool is None:
        _pool = ThreadPool(max(1, _threads()))
    return _pool.apply(function, args)


def hash_password(password, method):
    return _off_hub(generate_password_hash, password, method)


def check_password(password_hash, password):
    return _off_hub(check_password_hash, password_hash, password)
