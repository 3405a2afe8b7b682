"""Outbound: `Stasis(<app>,outbound,<number>)` from an agent's own phone.

The agent's channel (Asterisk-named, adopted as the call's agent leg) plays the agent leg of
click-to-call: it is answered, put in a bridge with a ring tone, and the number is dialled
through the trunk; from there on the call is click-to-call's second half.

A dial that cannot be placed is still a call row (failed, with its reason), so every attempt
is on the record: an unknown phone, a number that fails makeCall's phone rule (the dialplan
pattern alone would let any trailing text reach the dial string), an agent already on a call.
"""
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from oml_server.extensions import db
from oml_server.models import AgentProfile
from oml_server.services.contacts import PHONE_RE

from . import call_store, reasons
from .ari_client import AriError
from .click_to_call import ClickToCall

log = logging.getLogger(__name__)


class Outbound(ClickToCall):
    kind = "outbound"
    starts = "outbound"

    def start(self, ctx, event):
        channel = event["channel"]
        args = event.get("args") or []
        number = str(args[1]) if len(args) > 1 else ""
        extension = channel.get("name", "").split("/", 1)[-1].rsplit("-", 1)[0]
        agent_id = db.session.scalar(select(AgentProfile.id)
                                     .where(AgentProfile.sip_extension == extension))
        leg = [(channel["id"], "agent")]
        fields = {"number": number[:64], "agent_id": agent_id, "agent_channel_id": channel["id"]}
        if agent_id is None or not PHONE_RE.match(number):
            reason = reasons.AGENT_UNREACHABLE if agent_id is None else reasons.INVALID_NUMBER
            return self._refuse(ctx, channel["id"], leg, fields, reason, "normal")
        try:
            call_store.create(ctx.call_id, self.kind, legs=leg, active_agent_id=agent_id, **fields)
        except IntegrityError:  # the agent is already on a call (unique active_agent_id)
            return self._refuse(ctx, channel["id"], leg, fields, reasons.AGENT_BUSY, "busy")
        ctx.adopt(channel["id"], "agent")
        call_store.mark_on_call(agent_id)
        ctx.begin_event()
        self.agent_answered(ctx, channel["id"])
        self.engine.presence.mirror(agent_id)  # after the dial: the agent hears ringing first
        return True

    def _refuse(self, ctx, channel_id, leg, fields, reason, hangup_reason):
        call_store.create(ctx.call_id, self.kind, legs=leg, state="failed", reason=reason,
                          ended_at=call_store.now(), **fields)
        call_store.leg_gone(channel_id)
        try:
            self.ari.hangup(channel_id, reason=hangup_reason)
        except AriError:
            pass
        return False

    def answer_agent(self, ctx, agent_leg):
        try:
            self.ari.answer(agent_leg)
        except AriError as exc:
            log.warning("call %s: cannot answer the agent: %s", ctx.call_id, exc)
