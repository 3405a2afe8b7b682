"""Password hashing runs off the gevent hub: a login never freezes the other greenlets."""
import gevent

from oml_server import passwords


def _ticks_during(work):
    """How many 5 ms ticks another greenlet managed while `work` ran, and how long it ran."""
    ticks = []
    running = True

    def ticker():
        while running:
            ticks.append(gevent.get_hub().loop.now())
            gevent.sleep(0.005)

    greenlet = gevent.spawn(ticker)
    gevent.sleep(0)  # the ticker starts before the work
    started = gevent.get_hub().loop.now()
    try:
        work()
    finally:
        elapsed = gevent.get_hub().loop.now() - started
        running = False
        greenlet.join()
    return len(ticks), elapsed


def test_a_real_scrypt_hash_lets_other_greenlets_run():
    hashed = []
    count, elapsed = _ticks_during(lambda: hashed.append(passwords.hash_password("pw", "scrypt")))
    assert hashed[0].startswith("scrypt:")
    # On the hub the ticker ticks once (before the hash) in the whole ~100 ms; off it, about
    # every 5 ms (4 leaves room for a busy machine).
    assert count >= 4, (count, elapsed)


def test_checking_a_real_scrypt_hash_lets_other_greenlets_run():
    stored = passwords.hash_password("right", "scrypt")
    results = []

    def check_both():
        results.append(passwords.check_password(stored, "right"))
        results.append(passwords.check_password(stored, "wrong"))

    count, elapsed = _ticks_during(check_both)
    assert results == [True, False]
    assert count >= 4, (count, elapsed)
