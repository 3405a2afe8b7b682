"""A password-hashing helper process (see oml_server/passwords.py): reads one JSON request a
line on stdin — ["hash", password, method] or ["check", stored hash, password] — and writes
one JSON answer a line on stdout: [true, result] or [false, error text]. It runs at the lowest
CPU priority and exits when its parent closes the pipe.

Run as a file (`python .../password_helper.py`), not as a module of the package: it imports
only werkzeug's hashing, so it starts in a fraction of a second and holds ~15 MB.
"""
import json
import os
import signal
import sys


def main():
    # Ctrl-C reaches the whole process group: the server stops, closing the pipe, and this
    # process then ends quietly (no KeyboardInterrupt traceback on the server's terminal).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(19)
    except OSError:
        pass  # not allowed: still a process of its own, never holding the server's GIL
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
