"""The engine: wires the ARI client, the flows, the dispatcher and the supervisor, and installs
the telephony backend the REST layer uses. Runs inside `oml-server run` (greenlets beside the
WSGI server) or alone as `oml-server engine`. One engine per Asterisk and app name."""
import logging

import gevent

from oml_server.services import telephony

from . import ari_client, reconcile
from .backend import AriBackend
from .click_to_call import ClickToCall
from .dispatcher import Dispatcher
from .supervisor import Supervisor

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30


def make_client(config):
    return ari_client.AriClient(config["ARI_URL"], config["ARI_USER"], config["ARI_PASSWORD"],
                                config["ARI_APP"], pool_size=config.get("ARI_POOL_SIZE", 50))


def install_backend(app):
    """API-only processes: REST calls to ARI, no event websocket."""
    backend = AriBackend(make_client(app.config), app.config)
    telephony.set_backend(backend)
    return backend


class Engine:
    def __init__(self, app):
        self.app = app
        config = app.config
        self.ari = make_client(config)
        self.flows = {"click_to_call": ClickToCall(self.ari, config)}
        self.starters = {}
        self._extend_flows(config)
        self.supervisor = Supervisor(config, self._dispatch, self._connected, self._disconnected)
        self.backend = AriBackend(self.ari, config, self.supervisor)
        self.dispatcher = Dispatcher(app, self.flows, self.backend.presence, self.starters)
        self.backend.on_teardown = self.dispatcher.torn_down_elsewhere
        self.startup_time = None
        self._sweeper = None

    def _extend_flows(self, config):
        """Dialplan handoff flows (inbound to a campaign, outbound from an agent's phone)."""
        try:
            from .handoff import register
        except ImportError:
            return
        register(self, config)

    def _dispatch(self, event):
        self.dispatcher.dispatch(event)

    def _connected(self):
        with self.app.app_context():
            info = self.ari.asterisk_info(only="status")
            startup = (info.get("status") or {}).get("startup_time")
            restarted = startup != self.startup_time
            self.startup_time = startup
            if restarted:
                pushed, removed = self.backend.sip.push_all()
                log.info("Asterisk started at %s: %d SIP accounts pushed, %d removed",
                         startup, pushed, removed)
            self.ari.subscribe("endpoint:PJSIP")
            reconcile.reconcile(self.ari, self.dispatcher)
            self.backend.presence.refresh_all(force=restarted)

    def _disconnected(self):
        log.warning("ARI disconnected: makeCall answers 'telephony unavailable' until it is back")

    def _sweep(self):
        """Rotate expired SIP credentials and retry device-state mirrors, every few seconds."""
        while True:
            gevent.sleep(SWEEP_SECONDS)
            if not self.supervisor.connected:
                continue
            with self.app.app_context():
                try:
                    self.backend.sip.rotate_expired()
                    self.backend.presence.refresh_all()
                except Exception:
                    log.exception("periodic sweep failed")

    def start(self):
        telephony.set_backend(self.backend)
        self.supervisor.start()
        self._sweeper = gevent.spawn(self._sweep)
        return self

    def stop(self):
        self.supervisor.stop()
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
        telephony.set_backend(None)


def start_engine(app):
    return Engine(app).start()
