"""The telephony backend the REST layer calls (see oml_server/services/telephony.py).

It uses ARI's REST calls only, so it works in every API worker of a split deployment; the
event-driven rest of each call happens in the one engine process.
"""
import json
import logging

import gevent
import gevent.pool
from flask import current_app
from sqlalchemy import bindparam, select

from oml_server import messages as M
from oml_server.database import Prepared, run
from oml_server.extensions import db
from oml_server.models import AgentProfile, SupervisorProfile
from oml_server.services import engine_status
from oml_server.services.telephony import CallNotPlaced

from . import call_control as call_commands
from . import call_headers, call_store, ids, reasons, supervision
from .ari_client import AriError, AriUnavailable
from .flow import teardown_legs
from .presence import Presence
from .sip_accounts import SipAccounts

log = logging.getLogger(__name__)

# The agent's extension: one column, not the ORM profile (makeCall's caller is a TokenUser).
_EXTENSION = Prepared(select(AgentProfile.sip_extension).where(AgentProfile.id == bindparam("aid")))

# The longest a device-state mirror waits for the process to be idle (a hint or queue reading
# it lags the database by at most this much more under load; the sweep writes any it missed).
MIRROR_IDLE_WAIT_SECONDS = 1.0

# Statuses of a failed originate that mean "Asterisk is not answering properly", not "this
# endpoint cannot be called".
_TELEPHONY_STATUSES = (401, 403, 502, 503, 504)


class AriBackend:
    def __init__(self, ari, settings, supervisor=None):
        self.ari = ari
        self.settings = settings
        self.supervisor = supervisor  # set in the engine process; None in API-only workers
        # Engine process: told which call hangupCall tears down (Dispatcher.torn_down_elsewhere).
        self.on_teardown = None
        self.on_placed = None   # the engine's process: Dispatcher.placed_here
        # Engine process: how a command reaches its call's worker (Dispatcher.enqueue).
        self.on_command = None
        self.presence = Presence(ari)
        self.sip = SipAccounts(ari, settings)
        self._mirrors = gevent.pool.Group()  # device-state mirrors not yet written

    def engine_ready(self):
        """In the engine's process: its websocket is up. In an API-only worker: the engine's
        heartbeat in the database is fresh and connected (else a call placed now would ring an
        agent into an app nobody listens to)."""
        if self.supervisor is not None:
            return self.supervisor.connected
        return engine_status.cached(self.node)[0] == "ok"

    @property
    def node(self):
        return self.settings.get("ASTERISK_NODE", "local")

    def place_click_to_call(self, call, known):
        if not self.engine_ready():
            raise CallNotPlaced(M.TELEPHONY_UNAVAILABLE)
        extension = known.extension or run(_EXTENSION, {"aid": call.agent_id}).scalar()
        channel_id = ids.agent_channel(call.id)
        if self.on_placed is not None:
            self.on_placed(call.id)
        # Written before the originate (one transaction: the call rings, the agent is on it):
        # an auto-answering phone is in Stasis within ms.
        call_store.ring_agent(call.id, call.agent_id, agent_channel_id=channel_id)
        try:
            # No GET /endpoints first: an unregistered (or unknown) endpoint fails the originate
            # at once with 500 "Allocation failed" (or 404), which is the offline answer; the
            # extra request was ~5% of the server's CPU per call.
            self.ari.originate(f"PJSIP/{extension}", appArgs=f"click_to_call,{call.id}",
                               channelId=channel_id, callerId=f'"{call.number}" <{call.number}>',
                               timeout=self.settings["AGENT_ANSWER_TIMEOUT"],
                               variables=call_headers.agent_leg_variables(
                                   call, call.agent_id, campaign_type=known.campaign_type,
                                   recorded=known.recorded))
        except AriError as exc:
            log.warning("call %s: originate failed: %s", call.id, exc)
            raise CallNotPlaced(originate_error(exc))  # the caller ends the row with it
        # The device state (INUSE) is mirrored after the answer, not before: makeCall answers
        # once the originate is accepted, and the mirror is two ARI/database round trips.
        self._mirror_soon(call.agent_id, extension)

    def hangup_call(self, call):
        """hangupCall: the row is ended first (reason hangup_requested, not the agent_hangup the
        legs' StasisEnd would otherwise give), then every leg and bridge goes. A call not yet
        bridged ends as failed. A leg the engine records after this (the contact being
        originated) is hung up by the engine when it sees the call ended."""
        # The id is read before finish commits: the commit expires `call`, and reading an
        # expired attribute reloads the whole row (one SELECT per hangupCall).
        call_id, final = call.id, "ended" if call.state == "bridged" else "failed"
        ended = call_store.finish(call_id, final, reasons.HANGUP_REQUESTED)
        if not ended:
            return
        if ended.legs:
            if self.on_teardown is not None:
                self.on_teardown(call_id)
            teardown_legs(self.ari, ended.legs)
        if ended.agent_id is not None:
            # The agent is free: mirrored from here, after hangupCall answers (the engine's
            # worker drops the legs' trailing events, see Dispatcher.torn_down_elsewhere).
            self._mirror_soon(ended.agent_id, freed=ended.freed)

    def call_command(self, call, command, args):
        """Hand a command (hold, transfer…) to the engine that runs `call`: 1 when it took it,
        0 when no engine of the call's node is connected (nothing happens then). In the engine's
        process straight to the call's worker; from an API-only worker as an ARI user event,
        which Asterisk delivers on the engine's websocket (404 when no engine listens)."""
        if call.node != self.node:
            return 0  # this deployment drives one node: another node's engine is not ours
        if self.on_command is not None:
            if not self.supervisor.connected:
                return 0
            self.on_command(call.id, {"type": call_commands.COMMAND, "command": command,
                                      "params": args})
            return 1
        if not self.engine_ready():
            return 0
        try:
            self.ari.request("POST", f"/events/user/{call_commands.USER_EVENT}",
                             {"application": self.settings["ARI_APP"]},
                             json_body={"variables": {"call_id": call.id, "command": command,
                                                      "args": json.dumps(args)}})
        except AriError as exc:
            log.warning("call %s: command %s not delivered: %s", call.id, command, exc)
            return 0
        return 1

    def presence_changed(self, agent_id):
        return self._mirror(agent_id)

    def _mirror_soon(self, agent_id, on_call_extension=None, freed=None):
        """Mirror the agent's device state in a greenlet of its own (the request answers
        first). `on_call_extension`: makeCall just put the agent on a call at that extension,
        so the state is INUSE without reading it (Presence.mirror_on_call); `freed`: the end
        of its call returned the freed session (Presence.mirror)."""
        app = current_app._get_current_object()

        def mirror():
            # Not before this process has nothing more urgent to run (at most
            # MIRROR_IDLE_WAIT_SECONDS): in a burst of makeCalls the mirrors would otherwise
            # take their turn between the steps of the calls being set up.
            with gevent.Timeout(MIRROR_IDLE_WAIT_SECONDS, False):
                gevent.idle()
            with app.app_context():
                try:
                    if on_call_extension is not None:
                        self.presence.mirror_on_call(agent_id, on_call_extension)
                    else:
                        self.presence.mirror(agent_id, freed)
                except Exception:  # the row keeps mirrored_state NULL: the sweep writes it
                    log.warning("device state of agent %s not mirrored", agent_id, exc_info=True)
        self._mirrors.spawn(mirror)

    def settle(self, timeout=None):
        """Wait until the device-state mirrors already asked for are written (a test's end)."""
        self._mirrors.join(timeout=timeout)

    def _mirror(self, agent_id):
        from oml_server.models import AgentSession
        if self.presence.mirror(agent_id):
            session = db.session.get(AgentSession, agent_id)
            return session.mirrored_state if session else None
        return None

    def credentials_issued(self, agent_id, sip_user, sip_password, model=AgentProfile):
        agent = db.session.get(model, agent_id)
        try:
            self.sip.credentials_issued(agent, sip_user, sip_password)
        except AriError as exc:
            if not _unreachable(exc):
                raise
            # Answered anyway (contract §2.9): the credentials are stored, and the engine
            # pushes every agent's stored credentials when it (re)connects to Asterisk.
            log.warning("SIP credentials of agent %s not pushed yet (Asterisk unreachable: %s); "
                        "pushed when the engine reconnects", agent_id, exc)

    def supervise(self, call, phone, mode):
        """Ring the supervisor's phone into the bridged call (ari_engine/supervision.py)."""
        if not self.engine_ready():
            raise CallNotPlaced(M.TELEPHONY_UNAVAILABLE)
        try:
            supervision.ring(self.ari, self.settings, call, phone.sip_extension, mode,
                             phone.user_id)
        except AriError as exc:
            log.warning("call %s: supervisor's phone %s not rung: %s", call.id,
                        phone.sip_extension, exc)
            raise CallNotPlaced(originate_error(exc))

    def supervisor_credentials_issued(self, supervisor_id, sip_user, sip_password):
        """A supervisor's phone: pushed exactly like an agent's (same columns)."""
        self.credentials_issued(supervisor_id, sip_user, sip_password, SupervisorProfile)

    def status(self):
        if self.supervisor is None:
            return engine_status.cached(self.node)[0]
        return "ok" if self.supervisor.connected else "connecting"

    def problems(self):
        """What the engine's connect-time check found missing in Asterisk."""
        return engine_status.cached(self.node)[1]


def originate_error(exc):
    """What a failed originate of the agent's leg means, for the agent: 500 "Allocation
    failed" is a phone with no registration; 404 an extension Asterisk does not know; Asterisk
    away or refusing us is "telephony unavailable"; anything else is shown as Asterisk said."""
    if isinstance(exc, AriUnavailable) or exc.status in _TELEPHONY_STATUSES:
        return M.TELEPHONY_UNAVAILABLE
    if exc.status == 500 and "allocation failed" in str(exc).lower():
        return M.AGENT_OFFLINE
    if exc.status == 404:
        return M.AGENT_EXTENSION_UNKNOWN
    if exc.status >= 500:
        return M.TELEPHONY_UNAVAILABLE
    return M.asterisk_refused(getattr(exc, "message", None) or str(exc))


def _unreachable(exc):
    """Asterisk did not answer (or its HTTP server said it cannot now), as opposed to refusing."""
    return isinstance(exc, AriUnavailable) or exc.status in (502, 503, 504)
