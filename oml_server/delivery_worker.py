"""The delivering greenlets of a process: the fan-out (outbox → deliveries), the sender
(due deliveries → CRMs) and the retention prune (every PRUNE_INTERVAL_SECONDS). They run apart from request handling and from the ARI event reader:
a slow or dead CRM holds only its own destination's few greenlets (CRM_CONCURRENCY each).

Started by `oml-server run`, `oml-server engine` and `oml-server deliver`; any number of them
may run against one database (rows are claimed, fan-out is idempotent).
"""
import logging
import time

import gevent
import gevent.event

from .extensions import db
from .services import crm_sender, deliveries, outbox, prune

log = logging.getLogger("oml.deliveries")
BATCH = 8   # rows a sending slot takes per claim


class DeliveryWorker:
    def __init__(self, app):
        self.app = app
        cfg = app.config
        self.poll = cfg["DELIVERY_POLL_SECONDS"]
        # The sender is woken by this process's fan-out whenever it adds rows (every process
        # fans out every event: idempotent), so its own poll only finds retries and expired
        # leases coming due: every half retry base (1 s by default), not every fan-out poll.
        # Its 5 polls a second were a third of an idle server's CPU.
        self.send_poll = max(self.poll, min(1.0, cfg["CRM_RETRY_BASE_SECONDS"] / 2))
        self.concurrency = cfg["CRM_CONCURRENCY"]
        # A send is at most three requests (token, request, again after a 401) plus settling.
        self.lease = cfg["CRM_TIMEOUT_SECONDS"] * 3 + 5
        self.in_flight = {}            # destination -> requests being sent now
        # A destination that just failed with a retryable error rests (in this process) before
        # any other of its rows is tried: a dead CRM then costs one probe per rest, not one
        # attempt per pending row per poll (measured: with every row retried, 20 calls' setup
        # p95 beside a dead CRM was 1.4-3.8x the same without).
        self.resting = {}              # destination -> (monotonic time it may be tried, failures)
        self.rest_base = cfg["CRM_RETRY_BASE_SECONDS"]
        self.rest_max = cfg["CRM_RETRY_MAX_SECONDS"]
        self.wake = gevent.event.Event()
        self.greenlets = []
        self.stopping = False
        self.stopped = gevent.event.Event()

    def start(self):
        # The fan-out is woken when this process writes events (outbox.written_wakers) and
        # reads them DELIVERY_POLL_SECONDS later (the events of a burst in one batch, the
        # transactions that wrote them committed); otherwise it looks once a second, for
        # events only other processes wrote (their own fan-outs deliver those at once: every
        # process fans out every event, idempotently). Polling every 0.2 s was most of an idle
        # server's CPU.
        self._written = gevent.event.Event()
        outbox.written_wakers.add(self._written)
        self.greenlets = [gevent.spawn(self._loop, self._fan_out_once, self._written,
                                       max(self.poll, 1.0), self.poll),
                          gevent.spawn(self._loop, self._send_due, self.wake, self.send_poll),
                          gevent.spawn(self._prune_periodically)]
        return self

    def stop(self, timeout=5):
        outbox.written_wakers.discard(getattr(self, "_written", None))
        self.stopping = True
        self.stopped.set()
        gevent.joinall(self.greenlets, timeout=timeout)
        gevent.killall([g for g in self.greenlets if not g.dead], block=False)

    def _loop(self, step, wake, poll, settle=0.0):
        """`step` until stopped; after an idle step, wait for `wake` or `poll` s, and `settle`
        s more after a wake."""
        fan_out = deliveries.FanOut()
        while not self.stopping:
            busy = False
            with self.app.app_context():
                try:
                    busy = step(fan_out)
                except Exception:
                    log.exception("delivery step failed; retrying")
                    db.session.rollback()
                    gevent.sleep(1)
                finally:
                    db.session.remove()
            if not busy:
                woken = wake.wait(poll)
                wake.clear()
                if woken and settle:
                    gevent.sleep(settle)

    def _prune_periodically(self):
        """Retention, in this process's spare time: several processes may do it at once (a
        row removed twice is removed once)."""
        interval = self.app.config["PRUNE_INTERVAL_SECONDS"]
        while not self.stopping:
            with self.app.app_context():
                try:
                    removed = prune.prune(self.app.config)
                    if any(removed.values()):
                        log.info("pruned %(events)d events, %(deliveries)d deliveries", removed)
                except Exception:
                    log.exception("prune failed; trying again next period")
                    db.session.rollback()
                finally:
                    db.session.remove()
            self.stopped.wait(interval)

    def _fan_out_once(self, fan_out):
        added = fan_out.step()
        if added:
            self.wake.set()
        return added > 0

    def _send_due(self, _fan_out):
        claimed = 0
        now = time.monotonic()
        for destination in deliveries.due_destinations():
            if self.resting.get(destination, (0, 0))[0] > now:
                continue
            free = self.concurrency - self.in_flight.get(destination, 0)
            if free <= 0:
                continue
            # Each free slot takes a few rows (the heads of different calls) and sends them one
            # after the other: one claim and one settle per batch instead of per request.
            rows = deliveries.claim(destination, free * BATCH, self.lease)
            claimed += len(rows)
            for slot in range(min(free, len(rows))):
                self.in_flight[destination] = self.in_flight.get(destination, 0) + 1
                gevent.spawn(self._send, destination, rows[slot::free])
        return claimed > 0

    def _send(self, destination, rows):
        with self.app.app_context():
            try:
                done = []
                for position, row in enumerate(rows):
                    status, error, retry = crm_sender.deliver(row)
                    if error is None and not retry:
                        done.append((row, status))
                        continue
                    deliveries.settle(row, status, error, retry)
                    if retry:   # the CRM is failing: the rest of the batch goes back untried
                        deliveries.release(rows[position + 1:])
                        self._rest(destination)
                        break
                deliveries.settle_delivered(done)
                if done:
                    self.resting.pop(destination, None)
            except Exception:
                log.exception("deliveries of %s could not be settled; their lease will expire",
                              destination)
                db.session.rollback()
            finally:
                db.session.remove()
                self.in_flight[destination] -= 1
                self.wake.set()


    def _rest(self, destination):
        failures = self.resting.get(destination, (0, 0))[1] + 1
        pause = min(self.rest_max, self.rest_base * 2 ** (failures - 1))
        self.resting[destination] = (time.monotonic() + pause, failures)


def start(app):
    return DeliveryWorker(app).start() if app.config.get("DELIVERY_ENABLED", True) else None
