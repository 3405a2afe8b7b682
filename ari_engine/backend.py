"""The telephony backend the REST layer calls (see oml_server/services/telephony.py).

It uses ARI's REST calls only, so it works in every API worker of a split deployment; the
event-driven rest of each call happens in the one engine process.
"""
import logging

from oml_server import messages as M
from oml_server.extensions import db
from oml_server.models import AgentProfile
from oml_server.services.telephony import CallNotPlaced

from . import call_store, ids, reasons
from .ari_client import AriError, AriNotFound, AriUnavailable
from .click_to_call import teardown
from .presence import Presence
from .sip_accounts import SipAccounts

log = logging.getLogger(__name__)


class AriBackend:
    def __init__(self, ari, settings, supervisor=None):
        self.ari = ari
        self.settings = settings
        self.supervisor = supervisor  # set in the engine process; None in API-only workers
        self.presence = Presence(ari)
        self.sip = SipAccounts(ari, settings)

    def place_click_to_call(self, call):
        agent = db.session.get(AgentProfile, call.agent_id)
        if self.supervisor is not None and not self.supervisor.connected:
            raise CallNotPlaced(M.TELEPHONY_UNAVAILABLE)
        try:
            endpoint = self.ari.endpoint("PJSIP", agent.sip_extension)
        except AriNotFound:
            raise CallNotPlaced(M.AGENT_OFFLINE)
        except AriError as exc:
            log.warning("call %s: ARI unavailable: %s", call.id, exc)
            raise CallNotPlaced(M.TELEPHONY_UNAVAILABLE)
        if endpoint.get("state") != "online":
            raise CallNotPlaced(M.AGENT_OFFLINE)
        channel_id = ids.agent_channel(call.id)
        # Written before the originate: an auto-answering phone is in Stasis within ms.
        call_store.advance(call.id, "agent_ringing", agent_channel_id=channel_id)
        call_store.mark_on_call(call.agent_id)
        try:
            self.ari.originate(f"PJSIP/{agent.sip_extension}", appArgs=f"click_to_call,{call.id}",
                               channelId=channel_id, callerId=f'"{call.number}" <{call.number}>',
                               timeout=self.settings["AGENT_ANSWER_TIMEOUT"])
        except AriError as exc:
            log.warning("call %s: originate failed: %s", call.id, exc)
            reason = M.TELEPHONY_UNAVAILABLE if isinstance(exc, AriUnavailable) else M.AGENT_OFFLINE
            call_store.finish(call.id, "failed", reasons.AGENT_UNREACHABLE)
            raise CallNotPlaced(reason)
        self._mirror(call.agent_id)

    def hangup_call(self, call):
        """hangupCall: the row is ended first (reason hangup_requested, not the agent_hangup the
        legs' StasisEnd would otherwise give), then both legs and the bridge go. A call not yet
        bridged ends as failed."""
        legs = [c for c in (call.agent_channel_id, call.contact_channel_id) if c]
        final = "ended" if call.state == "bridged" else "failed"
        call_store.finish(call.id, final, reasons.HANGUP_REQUESTED)
        if legs:
            teardown(self.ari, call.id, extra_channels=legs)

    def presence_changed(self, agent_id):
        return self._mirror(agent_id)

    def _mirror(self, agent_id):
        from oml_server.models import AgentSession
        if self.presence.mirror(agent_id):
            session = db.session.get(AgentSession, agent_id)
            return session.mirrored_state if session else None
        return None

    def credentials_issued(self, agent_id, sip_user, sip_password):
        agent = db.session.get(AgentProfile, agent_id)
        self.sip.credentials_issued(agent, sip_user, sip_password)

    def status(self):
        if self.supervisor is None:
            try:
                self.ari.asterisk_info(only="status")
                return "ok"
            except AriError:
                return "down"
        return "ok" if self.supervisor.connected else "connecting"
