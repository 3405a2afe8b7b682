"""Keeps the engine connected to Asterisk.

Connects the app's event websocket (pings find a dead connection within seconds), reconnects
with a short capped backoff when Asterisk goes away, and after every (re)connect runs the
`on_connected` work: push SIP accounts again if Asterisk restarted, subscribe to the agents'
endpoints, reconcile calls, refresh presence. Events are dispatched one by one; a failing
handler never stops the loop.
"""
import json
import logging

import gevent

from .ari_client import AriError, AriEventStream, AriUnavailable
from .dispatcher import IGNORED_EVENTS

log = logging.getLogger(__name__)

BACKOFF_START = 0.25
BACKOFF_MAX = 2.0  # Asterisk back → engine back within ~2 s
# Frames compared for repeats (AriEventStream.drop_repeats): the endpoint subscription's copy
# of a channel event arrives right after the channel's own, a few frames later at most.
REPEAT_WINDOW = 64


class Supervisor:
    def __init__(self, settings, dispatch, on_connected, on_disconnected=None):
        self.settings = settings
        self.dispatch = dispatch
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.connected = False
        self.connections = 0
        self._stream = None
        self._stopped = False
        self._greenlet = None

    def start(self):
        self._greenlet = gevent.spawn(self.run)
        return self

    def stop(self):
        self._stopped = True
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=3)

    def run(self):
        backoff = BACKOFF_START
        while not self._stopped:
            stream = AriEventStream(self.settings["ARI_URL"], self.settings["ARI_USER"],
                                    self.settings["ARI_PASSWORD"], self.settings["ARI_APP"],
                                    skip_types=IGNORED_EVENTS, drop_repeats=REPEAT_WINDOW)
            try:
                stream.connect()
                self._stream = stream
                self.connections += 1
                log.info("connected to ARI (connection %d)", self.connections)
                backoff = BACKOFF_START
                self._run_hook(self.on_connected)
                # Connected (health "ok", makeCall taken) once the connect-time work is done:
                # before it, a restarted Asterisk does not know the agents' SIP accounts yet
                # and a phone registering then is refused (401).
                self.connected = True
                record = self._recorder()
                for event in stream:
                    if record is not None:
                        record(event)
                    self.dispatch(event)
            except AriUnavailable as exc:
                if self.connected:
                    log.warning("lost ARI: %s", exc)
            except Exception:
                log.exception("event loop failed; reconnecting")
            finally:
                stream.close()
                self._stream = None
                if self.connected:
                    self.connected = False
                    self._run_hook(self.on_disconnected)
            if not self._stopped:
                gevent.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _recorder(self):
        """ARI_EVENT_LOG=<file>: every event the app receives, one JSON object a line (for
        post-mortems, and how tests/recordings/ were made)."""
        path = self.settings.get("ARI_EVENT_LOG")
        if not path:
            return None
        out = open(path, "a", buffering=1)

        def record(event):
            out.write(json.dumps(event) + "\n")
        return record

    def _run_hook(self, hook):
        if hook is None:
            return
        try:
            hook()
        except AriError as exc:
            log.warning("after-connect work incomplete: %s", exc)
        except Exception:
            log.exception("after-connect work failed")
