"""Password hashing off the gevent hub.

scrypt costs ~100 ms of CPU by design. Run on the hub, it would freeze every greenlet of the
process (requests and the ARI engine's event handling) for that long on each login; run in
gevent's thread pool, only the greenlet that asked waits. hashlib releases the GIL while it
hashes, so the other greenlets really do run meanwhile.
"""
import gevent
from werkzeug.security import check_password_hash, generate_password_hash


def _off_hub(function, *args):
    return gevent.get_hub().threadpool.apply(function, args)


def hash_password(password, method):
    return _off_hub(generate_password_hash, password, method)


def check_password(password_hash, password):
    return _off_hub(check_password_hash, password_hash, password)
