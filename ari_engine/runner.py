"""The engine: wires the ARI client, the flows, the dispatcher, the supervisor and the sweep,
and installs the telephony backend the REST layer uses. Runs inside `oml-server run`
(greenlets beside the WSGI server) or alone as `oml-server engine`. One engine per Asterisk
node and app name."""
import logging

import gevent

from oml_server.extensions import db
from oml_server.services import agent_presence, engine_status, telephony

from . import ari_client, asterisk_check, recording, sweep
from .backend import AriBackend
from .call_control import CallControl
from .click_to_call import ClickToCall
from .ari_client import AriError
from .dispatcher import IGNORED_EVENTS, Dispatcher
from .inbound import Inbound
from .outbound import Outbound
from .supervision import Supervision
from .supervisor import Supervisor

log = logging.getLogger(__name__)
ACW_CHECK_SECONDS = 1   # how late an after-call work may end (one indexed query each time)


def make_client(config):
    return ari_client.AriClient(config["ARI_URL"], config["ARI_USER"], config["ARI_PASSWORD"],
                                config["ARI_APP"], pool_size=config.get("ARI_POOL_SIZE", 50))


def install_backend(app):
    """API-only processes: REST calls to ARI, no event websocket; the engine's heartbeat in
    the database says whether a call placed now will run."""
    backend = AriBackend(make_client(app.config), app.config)
    telephony.set_backend(backend)
    return backend


class Engine:
    def __init__(self, app):
        self.app = app
        self.settings = config = app.config
        self.node = config.get("ASTERISK_NODE", "local")
        self.ari = make_client(config)
        self.supervisor = Supervisor(config, self._dispatch, self._connected, self._disconnected)
        self.backend = AriBackend(self.ari, config, self.supervisor)
        self.presence = self.backend.presence
        self.flows = {flow.kind: flow for flow in
                      (ClickToCall(self), Inbound(self), Outbound(self), Supervision(self))}
        self.control = CallControl(self)
        self.dispatcher = Dispatcher(app, self.flows, self.presence,
                                     idle_seconds=config.get("ENGINE_IDLE_SECONDS", 600),
                                     control=self.control)
        self.backend.on_teardown = self.dispatcher.torn_down_elsewhere
        self.backend.on_placed = self.dispatcher.placed_here
        self.dispatcher.on_recording = recording.finished
        self.backend.on_command = self.dispatcher.enqueue  # commands taken in this process
        self.startup_time = None
        self.problems = None
        self._loops = []

    def _dispatch(self, event):
        self.dispatcher.dispatch(event)

    def _connected(self):
        with self.app.app_context():
            info = self.ari.asterisk_info(only="status")
            startup = (info.get("status") or {}).get("startup_time")
            restarted = startup != self.startup_time
            self.startup_time = startup
            problems = asterisk_check.check(self.ari, self.settings)
            if problems != self.problems:  # said once, not at every reconnect
                for problem in problems:
                    log.error("Asterisk lacks what the engine needs: %s", problem)
                self.problems = problems
            if restarted:
                pushed, removed = self.backend.sip.push_all()
                log.info("Asterisk started at %s: %d SIP accounts pushed, %d removed",
                         startup, pushed, removed)
            self.ari.subscribe("endpoint:PJSIP")
            self._filter_events()
            sweep.sweep(self.ari, self.dispatcher, self.settings, asterisk_started=startup)
            self.backend.presence.refresh_all(force=restarted)
            engine_status.beat(self.node, True, startup=startup, problems=problems)

    def _filter_events(self):
        """Ask Asterisk not to send the events no flow reads (the reader drops them anyway:
        reading and skipping ~60 frames per call was ~5% of the server's CPU per call)."""
        try:
            self.ari.filter_events(IGNORED_EVENTS)
        except AriError as exc:  # an Asterisk without eventFilter: the reader skips them
            log.info("ARI event filter not set (%s): unread events are skipped on arrival", exc)

    def _disconnected(self):
        log.warning("ARI disconnected: makeCall answers 'telephony unavailable' until it is back")
        self._beat()

    def _beat(self):
        with self.app.app_context():
            try:
                engine_status.beat(self.node, self.supervisor.connected)
            except Exception:
                log.warning("heartbeat not written", exc_info=True)

    def _heartbeat_loop(self):
        while True:
            gevent.sleep(self.settings.get("ENGINE_HEARTBEAT_SECONDS", 5))
            self._beat()

    def _sweep_loop(self):
        """Rows against Asterisk, expired SIP credentials, device-state mirrors."""
        while True:
            gevent.sleep(self.settings.get("ENGINE_SWEEP_SECONDS", 30))
            if not self.supervisor.connected:
                continue
            with self.app.app_context():
                try:
                    sweep.sweep(self.ari, self.dispatcher, self.settings,
                                asterisk_started=self.startup_time)
                    self.backend.sip.rotate_expired()
                    self.backend.presence.refresh_all()
                except Exception:
                    log.exception("periodic sweep failed")
                    db.session.rollback()

    def _after_call_work_loop(self):
        """Agents whose after-call work is over become ready (within a second of its end)."""
        while True:
            gevent.sleep(ACW_CHECK_SECONDS)
            with self.app.app_context():
                try:
                    agent_presence.end_after_call_work()
                except Exception:
                    log.exception("after-call work not ended")
                    db.session.rollback()

    def start(self):
        telephony.set_backend(self.backend)
        self.supervisor.start()
        self._loops = [gevent.spawn(self._sweep_loop), gevent.spawn(self._heartbeat_loop),
                       gevent.spawn(self._after_call_work_loop)]
        return self

    def stop(self):
        self.supervisor.stop()
        for loop in self._loops:
            loop.kill(block=False)
        self.dispatcher.stop()
        self._beat_stopped()
        telephony.set_backend(None)

    def _beat_stopped(self):
        with self.app.app_context():
            try:
                engine_status.beat(self.node, False)
            except Exception:
                log.debug("final heartbeat not written", exc_info=True)


def start_engine(app):
    return Engine(app).start()
