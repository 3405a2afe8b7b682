"""Calls the dialplan hands to the app.

`Stasis(<app>,inbound,<campaign id>)`: the caller hears ringing while the available agent of
the campaign who has been idle longest is rung; on answer both are bridged; if the agent does
not answer the next one is tried; with nobody available the caller waits (ringing) up to
INBOUND_WAIT_SECONDS and then goes back to the dialplan (`continue`).

`Stasis(<app>,outbound,<number>)` from an agent's phone: the number is dialled through the
trunk and bridged with the agent, exactly like the second half of click-to-call.
"""
import logging
import uuid

import gevent
from sqlalchemy import select, update

from oml_server.extensions import db
from oml_server.models import AgentProfile, AgentSession, Call, campaign_agents

from . import call_store, ids, reasons
from .ari_client import AriError
from .cleanup import destroy_bridge, hang_up
from .click_to_call import ClickToCall

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


def _new_call(**fields):
    call = Call(id=uuid.uuid4().hex, **fields)
    db.session.add(call)
    db.session.commit()
    return call


def _caller_number(channel):
    return ((channel.get("caller") or {}).get("number") or "")[:64]


class Inbound:
    kind = "inbound"

    def __init__(self, engine, settings):
        self.engine = engine
        self.ari = engine.ari
        self.wait_seconds = settings["INBOUND_WAIT_SECONDS"]
        self.agent_timeout = settings["AGENT_ANSWER_TIMEOUT"]

    # -- start ------------------------------------------------------------------------------

    def start(self, event):
        """A caller entered the app: record the call (its id keys everything after)."""
        channel = event["channel"]
        args = event.get("args") or []
        from oml_server.services.lookup import campaign_by_id, parse_id
        campaign = campaign_by_id(parse_id(args[1] if len(args) > 1 else None))
        if channel.get("state") != "Up" and channel.get("dialplan", {}).get("exten") == "h":
            return None  # a hangup handler re-entering Stasis: nothing to answer
        call = _new_call(kind="inbound", campaign_id=campaign.id if campaign else None,
                         number=_caller_number(channel), contact_channel_id=channel["id"])
        return call.id

    # -- events -----------------------------------------------------------------------------

    def handle(self, call, event, memo):
        kind = event["type"]
        channel_id = (event.get("channel") or {}).get("id")
        if kind == "StasisStart" and channel_id == call.contact_channel_id:
            if "deadline" in memo or call.is_final:
                # The caller came back into the app (e.g. the dialplan's `h` extension matched
                # a Stasis() pattern after hangup): never start a finished call again.
                return
            memo["deadline"] = gevent.get_hub().loop.now() + self.wait_seconds
            memo["tried"] = set()
            self._ring_caller(call)
            self.offer(call, memo)
        elif kind == "OmlRetry":
            if call.agent_id is None and not call.is_final:
                self.offer(call, memo)
        elif kind == "StasisStart" and channel_id == call.agent_channel_id:
            self.agent_answered(call, memo)
        elif kind in ("ChannelHangupRequest", "ChannelDestroyed"):
            reasons.note_hangup(memo, channel_id, event)
            if kind == "ChannelDestroyed":
                self.leg_gone(call, channel_id, memo)
        elif kind == "StasisEnd":
            self.leg_gone(call, channel_id, memo)

    def _ring_caller(self, call):
        try:
            self.ari.ring(call.contact_channel_id)
        except AriError as exc:
            log.debug("call %s: cannot ring the caller: %s", call.id, exc)

    def offer(self, call, memo):
        """Ring the next available agent, or wait and try again, or give up."""
        if call.is_final:
            return
        if call.campaign_id is not None:
            agent = self.claim_agent(call, memo["tried"])
            if agent is not None:
                memo["tried"].add(agent.id)
                self.ring_agent(call, agent, memo)
                return
        if gevent.get_hub().loop.now() >= memo["deadline"] or call.campaign_id is None:
            self.give_up(call, memo)
            return
        gevent.spawn_later(RETRY_SECONDS, self.engine.dispatcher.enqueue, call.id, {"type": "OmlRetry"})

    def claim_agent(self, call, tried):
        """Atomically take the available member agent idle longest (skipping ones already tried
        for this call, unless everyone was)."""
        query = (select(AgentSession.agent_id)
                 .join(campaign_agents, campaign_agents.c.agent_id == AgentSession.agent_id)
                 .where(campaign_agents.c.campaign_id == call.campaign_id,
                        AgentSession.online.is_(True), AgentSession.logged_in.is_(True),
                        AgentSession.paused.is_(False), AgentSession.on_call.is_(False))
                 .order_by(AgentSession.idle_since.is_not(None), AgentSession.idle_since))
        candidates = [a for (a,) in db.session.execute(query).all()]
        fresh = [a for a in candidates if a not in tried] or candidates
        for agent_id in fresh:
            claimed = db.session.execute(
                update(AgentSession).where(AgentSession.agent_id == agent_id,
                                           AgentSession.on_call.is_(False))
                .values(on_call=True, mirrored_state=None))
            if claimed.rowcount == 1:
                db.session.execute(update(Call).where(Call.id == call.id).values(
                    agent_id=agent_id, active_agent_id=agent_id))
                db.session.commit()
                return db.session.get(AgentProfile, agent_id)
        db.session.rollback()
        return None

    def ring_agent(self, call, agent, memo):
        attempt = memo["attempts"] = memo.get("attempts", 0) + 1  # a fresh channel id each time
        channel_id = f"{ids.agent_channel(call.id)}{attempt}"
        call_store.set_fields(call.id, agent_channel_id=channel_id)
        call_store.advance(call.id, "agent_ringing")
        self.engine.backend.presence.mirror(agent.id)
        try:
            self.ari.originate(f"PJSIP/{agent.sip_extension}", appArgs=f"agent,{call.id}",
                               channelId=channel_id, timeout=self.agent_timeout,
                               callerId=f'"{call.number}" <{call.number}>')
        except AriError as exc:
            log.info("call %s: agent %s not reachable: %s", call.id, agent.id, exc)
            self.release_agent(call)
            self.offer(call, memo)

    def release_agent(self, call):
        """The rung agent did not take the call: free it and forget it on the call."""
        agent_id = call.agent_id
        db.session.execute(update(Call).where(Call.id == call.id).values(
            agent_id=None, active_agent_id=None, agent_channel_id=None, state="requested"))
        if agent_id is not None:
            db.session.execute(update(AgentSession).where(AgentSession.agent_id == agent_id)
                               .values(on_call=False, mirrored_state=None))
        db.session.commit()
        if agent_id is not None:
            self.engine.backend.presence.mirror(agent_id)

    def agent_answered(self, call, memo):
        bridge_id = ids.bridge(call.id)
        try:
            self.ari.answer(call.contact_channel_id)
            self.ari.bridge_create(bridge_id, type="mixing")
            call_store.set_fields(call.id, bridge_id=bridge_id)
            self.ari.bridge_add_channel(bridge_id, [call.contact_channel_id, call.agent_channel_id])
        except AriError as exc:
            log.warning("call %s: cannot bridge: %s", call.id, exc)
            self.leg_gone(call, call.contact_channel_id, memo)
            self._hangup(call.agent_channel_id)  # even when the call was already final
            return
        now = call_store.now()
        call_store.advance(call.id, "bridged", agent_answered_at=now, bridged_at=now)

    def leg_gone(self, call, channel_id, memo):
        call = call_store.get(call.id)
        if call.is_final:
            return
        if memo.get("shutdown") and channel_id in (call.contact_channel_id, call.agent_channel_id):
            call_store.finish(call.id, "ended" if call.state == "bridged" else "failed",
                              reasons.ASTERISK_LOST)
            return  # Asterisk hangs everything up itself; reconcile cleans the rest
        if channel_id == call.contact_channel_id:
            final = "ended" if call.state == "bridged" else "failed"
            reason = reasons.CONTACT_HANGUP if call.state == "bridged" else reasons.CALLER_HANGUP
            call_store.finish(call.id, final, reason, memo.get("causes", {}).get(channel_id))
            self._hangup(call.agent_channel_id)
            self._destroy_bridge(call)
            if call.agent_id:
                self.engine.backend.presence.mirror(call.agent_id)
        elif channel_id == call.agent_channel_id:
            if call.state == "bridged":
                call_store.finish(call.id, "ended", reasons.AGENT_HANGUP)
                self._hangup(call.contact_channel_id)
                self._destroy_bridge(call)
                self.engine.backend.presence.mirror(call.agent_id)
            else:  # the agent did not answer or rejected: try the next one
                self.release_agent(call)
                self.offer(call_store.get(call.id), memo)

    def give_up(self, call, memo):
        """Nobody answered in time: hand the caller back to the dialplan."""
        call_store.finish(call.id, "failed", reasons.NO_AGENT_AVAILABLE)
        try:
            self.ari.ring_stop(call.contact_channel_id)
        except AriError:
            pass
        try:
            self.ari.request("POST", f"/channels/{call.contact_channel_id}/continue")
        except AriError as exc:
            log.info("call %s: caller gone before continue: %s", call.id, exc)
        memo["torn_down"] = True

    def _hangup(self, channel_id):
        hang_up(self.ari, channel_id)

    def _destroy_bridge(self, call):
        destroy_bridge(self.ari, ids.bridge(call.id))


class Outbound(ClickToCall):
    """An agent dialled a number: the agent's own channel plays the agent leg of click-to-call."""
    kind = "outbound"

    def __init__(self, engine, settings):
        super().__init__(engine.ari, settings)
        self.engine = engine

    def start(self, event):
        channel = event["channel"]
        args = event.get("args") or []
        number = str(args[1]) if len(args) > 1 else ""
        extension = channel.get("name", "").split("/", 1)[-1].rsplit("-", 1)[0]
        agent = db.session.scalar(select(AgentProfile).where(AgentProfile.sip_extension == extension))
        call = Call(id=uuid.uuid4().hex, kind="outbound", number=number[:64],
                    agent_id=agent.id if agent else None,
                    active_agent_id=agent.id if agent else None, agent_channel_id=channel["id"])
        db.session.add(call)
        try:
            db.session.commit()
        except Exception:  # the agent is already on a call (unique active_agent_id)
            db.session.rollback()
            self._reject(channel["id"], "busy")
            return None
        if agent is None:
            call_store.finish(call.id, "failed", reasons.AGENT_UNREACHABLE)
            self._reject(channel["id"], "normal")
            return None
        call_store.mark_on_call(agent.id)
        self.engine.backend.presence.mirror(agent.id)
        return call.id

    def _reject(self, channel_id, reason):
        try:
            self.ari.hangup(channel_id, reason=reason)
        except AriError:
            pass

    def agent_answered(self, call, memo):
        try:
            self.ari.answer(call.agent_channel_id)
        except AriError as exc:
            log.warning("call %s: cannot answer the agent: %s", call.id, exc)
        super().agent_answered(call, memo)


def register(engine, settings):
    inbound, outbound = Inbound(engine, settings), Outbound(engine, settings)
    engine.flows["inbound"] = inbound
    engine.flows["outbound"] = outbound
    engine.starters["inbound"] = inbound.start
    engine.starters["outbound"] = outbound.start
