"""Password hashing off the gevent hub and out of the server's CPU time slices.

scrypt costs ~100 ms of CPU by design. Run on the hub, it would freeze every greenlet of the
process (requests and the ARI engine's event handling) for that long on each login. It runs in
PASSWORD_HASH_THREADS helpers (1 by default), each at the lowest CPU priority, so a burst of
logins queues behind them instead of taking every core from the calls (and from Asterisk, on a
shared machine); one helper hashes ~10 passwords a second. A helper process is SCHED_IDLE on
Linux (it runs only when no other task wants its core; like nice 19, a sliver of CPU if the
machine is saturated), nice 19 elsewhere.

PASSWORD_HASHER chooses what a helper is:
- `process` (default): a child process (oml_server/password_helper.py) answering over a pipe.
  The server's thread only writes and reads a line; the hash never touches its GIL.
- `thread`: a thread of gevent's pool in this process. hashlib releases the GIL while it
  hashes, but the thread takes it before and after; at nice 19 on busy cores it can be
  descheduled while the server's thread waits for the GIL it asked back (priority
  inversion), so every login may stall the calls for a scheduler slice.
"""
import json
import logging
import os
import sys
import threading
import time

import gevent.queue
from gevent import subprocess
from gevent.threadpool import ThreadPool
from werkzeug.security import check_password_hash, generate_password_hash

log = logging.getLogger(__name__)
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "password_helper.py")
_pool = None
_helpers = None


def _setting(name, default):
    try:
        from flask import current_app
        return current_app.config.get(name, default)
    except RuntimeError:  # no application (a script): the environment says
        return os.environ.get(name) or default


# A hash is ~0.1 s of CPU. One that has waited STARVED_AFTER_SECONDS at SCHED_IDLE got no
# core: every core is busy with tasks of the server's own scheduling group (gunicorn workers
# at full load, or everything in one container). At SCHED_IDLE it would then wait ~5 times as
# long as at nice 19 (one scrypt beside two busy loops of its group on 2 cores: 42 s against
# 8-9 s), so the helper is restarted at nice 19, where it was before SCHED_IDLE, and stays so
# NICE_FOR_SECONDS before it goes back to SCHED_IDLE.
STARVED_AFTER_SECONDS = 1.0
NICE_FOR_SECONDS = 60.0
_STARVED = object()


class _Helper:
    """One child process; started on first use and again if it died or starved."""

    def __init__(self):
        self.proc = None
        self.nice = False        # the running process is at nice 19, not SCHED_IDLE
        self.nice_until = 0.0    # monotonic time until which a new process starts at nice 19

    def ask(self, request):
        line = (json.dumps(request) + "\n").encode()
        # A helper that died (killed, OOM) is replaced once; one that starved, once more.
        for attempt in (1, 2, 3):
            nice = time.monotonic() < self.nice_until
            if self.proc is not None and self.nice and not nice:
                self._stop()   # the load that starved it has had time to pass
            if self.proc is None or self.proc.poll() is not None:
                command = [sys.executable, HELPER, *(["--nice"] if nice else [])]
                self.proc = subprocess.Popen(command, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, close_fds=True)
                self.nice = nice
            answer = _STARVED
            try:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
                with gevent.Timeout(None if self.nice else STARVED_AFTER_SECONDS, False):
                    answer = self.proc.stdout.readline()
            except OSError:
                answer = b""
            if answer is _STARVED:
                log.warning("password hash waited %.1f s for a CPU at the lowest priority: "
                            "hashing at nice 19 for the next %.0f s", STARVED_AFTER_SECONDS,
                            NICE_FOR_SECONDS)
                self.nice_until = time.monotonic() + NICE_FOR_SECONDS
            elif answer:
                ok, value = json.loads(answer)
                if not ok:
                    raise ValueError(value)
                return value
            self._stop()
        raise RuntimeError("the password helper process does not answer")

    def _stop(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.proc = None


def _in_helper(name, *args):
    global _helpers
    if _helpers is None:   # no yield from here to the assignment: created once
        _helpers = gevent.queue.Queue()
        for _ in range(max(1, int(_setting("PASSWORD_HASH_THREADS", 1)))):
            _helpers.put(_Helper())
    helper = _helpers.get()   # waits while every helper is hashing
    try:
        return helper.ask([name, *args])
    finally:
        _helpers.put(helper)


_niced = threading.local()


def _at_low_priority(function, args):
    """Run in a pool thread that the kernel schedules after everything else (nice 19, Linux
    threads have their own)."""
    if not getattr(_niced, "done", False):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass  # not Linux, or not allowed: the pool's size still bounds it
        _niced.done = True
    return function(*args)


def _in_thread(function, *args):
    global _pool
    if _pool is None:
        _pool = ThreadPool(max(1, int(_setting("PASSWORD_HASH_THREADS", 1))))
    return _pool.apply(_at_low_priority, (function, args))


def _thread_mode():
    return _setting("PASSWORD_HASHER", "process") == "thread"


def hash_password(password, method):
    if _thread_mode():
        return _in_thread(generate_password_hash, password, method)
    return _in_helper("hash", password, method)


def check_password(password_hash, password):
    if _thread_mode():
        return _in_thread(check_password_hash, password_hash, password)
    return _in_helper("check", password_hash, password)
