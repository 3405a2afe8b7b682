"""A password-hashing helper process (see oml_server/passwords.py): reads one JSON request a
line on stdin — ["hash", password, method] or ["check", stored hash, password] — and writes
one JSON answer a line on stdout: [true, result] or [false, error text]. It runs at the lowest
CPU priority (SCHED_IDLE on Linux: only when nothing else wants the core) and exits when its
parent closes the pipe.

Run as a file (`python .../password_helper.py`), not as a module of the package: it imports
only werkzeug's hashing, so it starts in a fraction of a second and holds ~15 MB.
"""
import json
import os
import signal
import sys


def _lowest_priority(idle=True):
    """SCHED_IDLE where Linux has it (unless `idle` is False), nice 19 otherwise. nice 19
    alone was not enough beside calls: a process woken for a call (the server, Asterisk,
    PostgreSQL, SIPp) that lands on the core the hash is using waits there for the scheduler
    instead of taking it at once, and the hash's core is not offered to it as an idle one. A
    SCHED_IDLE task is preempted by any other the moment it wakes, and its core counts as idle
    when the kernel places a woken task (bench/README.md, "Logins beside calls")."""
    try:
        os.nice(19)
    except OSError:
        pass  # not allowed: still a process of its own, never holding the server's GIL
    if not idle:   # the server saw a hash starve at SCHED_IDLE (oml_server/passwords.py)
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # not Linux: nice 19 is what there is


def main():
    # Ctrl-C reaches the whole process group: the server stops, closing the pipe, and this
    # process then ends quietly (no KeyboardInterrupt traceback on the server's terminal).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _lowest_priority(idle="--nice" not in sys.argv[1:])
    from werkzeug.security import check_password_hash, generate_password_hash
    operations = {"hash": generate_password_hash, "check": check_password_hash}
    for line in sys.stdin:
        try:
            name, *args = json.loads(line)
            answer = [True, operations[name](*args)]
        except Exception as exc:  # noqa: BLE001 - the parent raises it
            answer = [False, f"{type(exc).__name__}: {exc}"]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
