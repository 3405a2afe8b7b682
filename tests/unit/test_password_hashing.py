"""Password hashing runs off the gevent hub: a login never freezes the other greenlets."""
import os
import time

import gevent
import pytest

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


def test_a_scrypt_hash_costs_the_servers_process_no_cpu(app):
    """The hash runs in a helper process at nice 19: none of its ~100 ms of CPU is the
    server's (whose thread would otherwise share the GIL with it, see passwords.py)."""
    with app.app_context():
        passwords.check_password(passwords.hash_password("warm", "pbkdf2:sha256:1"), "warm")
        before = time.process_time()
        stored = passwords.hash_password("pw", "scrypt")
        assert passwords.check_password(stored, "pw") and not passwords.check_password(stored, "x")
        assert time.process_time() - before < 0.03


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policy")
def test_the_helper_process_runs_only_when_no_other_task_wants_its_core(app):
    """SCHED_IDLE, not just nice 19: beside 20 logins a second the calls' setup p95 rose ~1.25x
    with nice 19 and ~1.1x with SCHED_IDLE (bench/README.md, "Logins beside calls")."""
    with app.app_context():
        passwords.hash_password("warm", "pbkdf2:sha256:1")
        helper = passwords._helpers.peek()
        assert os.sched_getscheduler(helper.proc.pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, helper.proc.pid) == 19


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policy")
def test_a_hash_that_gets_no_cpu_at_the_lowest_priority_is_done_at_nice_19_for_a_while(
        app, monkeypatch, caplog):
    """When every core is busy with the server's own group, a SCHED_IDLE hash waits ~5 times
    as long as at nice 19 (42 s beside two busy loops, measured): after STARVED_AFTER_SECONDS
    the helper is restarted at nice 19 and the login answered; once NICE_FOR_SECONDS have
    passed, the next request goes back to SCHED_IDLE."""
    with app.app_context():
        stored = passwords.hash_password("pw", "scrypt")   # ~0.1 s: longer than the limit below
        helper = passwords._helpers.peek()
        monkeypatch.setattr(passwords, "STARVED_AFTER_SECONDS", 0.001)
        assert passwords.check_password(stored, "pw")
        assert "hashing at nice 19" in caplog.text
        assert os.sched_getscheduler(helper.proc.pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, helper.proc.pid) == 19
        assert not passwords.check_password(stored, "x")   # still at nice 19: no time limit
        assert os.sched_getscheduler(helper.proc.pid) == os.SCHED_OTHER

        helper.nice_until = 0.0   # NICE_FOR_SECONDS have passed
        monkeypatch.setattr(passwords, "STARVED_AFTER_SECONDS", 30.0)
        assert passwords.check_password(stored, "pw")
        assert os.sched_getscheduler(helper.proc.pid) == os.SCHED_IDLE


def test_a_helper_that_died_is_replaced(app):
    with app.app_context():
        stored = passwords.hash_password("pw", "pbkdf2:sha256:1")
        helper = passwords._helpers.peek()
        os.kill(helper.proc.pid, 9)
        helper.proc.wait()
        assert passwords.check_password(stored, "pw")


def test_an_unknown_method_is_refused_as_before(app):
    with app.app_context(), pytest.raises(ValueError):
        passwords.hash_password("pw", "no-such-method")
