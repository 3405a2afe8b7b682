"""Inbound: `Stasis(<app>,inbound,<campaign id>)` hands a caller to a campaign.

    caller enters ─(start: call row + caller leg; wait timer armed)→ requested
    requested ─(an available agent claimed)→ agent_ringing ─(agent answers)→ bridged
    agent_ringing ─(agent does not answer / rejects / unreachable)→ requested (next agent)
    requested ─(nobody available)→ retry every RETRY_SECONDS
    waiting with nobody available after INBOUND_WAIT_SECONDS → failed, caller back to the
    dialplan (`continue`); the limit is a timer (and the row's age), and an agent ringing when
    it fires finishes its ring (if it does not answer, the next available agent is still
    tried, but nobody is waited for any more)
    bridged ─(either side gone)→ ended

The caller hears ringing meanwhile. Agents are claimed in one conditional transaction (the
agent's session flips to on-call and the call to agent_ringing together), so two inbound calls,
or an inbound call and a makeCall, never take the same agent; a lost race tries the next one.
The wait limit is a timer, not a side effect of events.
"""
import logging
import uuid

import gevent
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import AgentProfile
from oml_server.services import agent_pick

from . import call_headers, call_store, ids, reasons, recording
from .ari_client import AriError
from .flow import Flow, channel_of

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class Inbound(Flow):
    kind = "inbound"
    starts = "inbound"
    events = frozenset({"StasisStart", "StasisEnd", "ChannelHangupRequest", "ChannelDestroyed",
                        "OmlRetry", "OmlWaitOver"})

    def __init__(self, engine):
        super().__init__(engine)
        self.wait_seconds = self.settings["INBOUND_WAIT_SECONDS"]
        self.agent_timeout = self.settings["AGENT_ANSWER_TIMEOUT"]

    # -- start ------------------------------------------------------------------------------

    def start(self, ctx, event):
        """A caller entered the app: record the call and its caller leg, then look for an
        agent. False when there is nothing to answer."""
        channel = event["channel"]
        if channel.get("state") != "Up" and channel.get("dialplan", {}).get("exten") == "h":
            return False  # a hangup handler re-entering Stasis
        args = event.get("args") or []
        from oml_server.services.lookup import campaign_by_id, parse_id
        campaign = campaign_by_id(parse_id(args[1] if len(args) > 1 else None))
        number = ((channel.get("caller") or {}).get("number") or "")[:64]
        campaign_id = campaign.id if campaign else None
        variables = self.crm_variables(campaign, channel["id"])
        call_store.create(ctx.call_id, "inbound", legs=[(channel["id"], "caller")],
                          campaign_id=campaign_id, number=number,
                          contact_channel_id=channel["id"], crm_variables=variables)
        ctx.adopt(channel["id"], "caller")
        gevent.spawn_later(self.wait_seconds, self.engine.dispatcher.enqueue, ctx.call_id,
                           {"type": "OmlWaitOver"})
        try:
            self.ari.ring(channel["id"])
        except AriError as exc:
            log.debug("call %s: cannot ring the caller: %s", ctx.call_id, exc)
        self.offer(ctx)
        return True

    def crm_variables(self, campaign, channel_id):
        """The `OMLCRM…` variables the campaign's CRM parameters name, from the caller's
        channel (one ARI request each; none when the campaign names none). Unset ones are
        left out."""
        from oml_server.services.crm_request import dialplan_names
        names = dialplan_names(campaign)
        if names:
            call_store.release()   # no connection held while ARI answers
        found = {}
        for name in names:
            try:
                value = (self.ari.channel_var(channel_id, name) or {}).get("value")
            except AriError:   # 404: not set on this channel
                continue
            if value not in (None, ""):
                found[name] = value
        return found or None

    # -- events -----------------------------------------------------------------------------

    def handle(self, ctx, event):
        kind, channel_id = event["type"], channel_of(event)
        row = ctx.row
        if row is None:
            return
        if kind == "OmlRetry":
            if row.state == "requested":
                self.offer(ctx)
        elif kind == "OmlWaitOver":
            if row.state == "requested":  # an agent ringing now finishes its ring (see offer)
                self.give_up(ctx)
        elif kind == "ChannelHangupRequest":
            self.note(ctx, event)
        elif kind == "StasisStart":
            if ctx.role(channel_id) == "agent":
                self.agent_answered(ctx, channel_id)
        elif kind in ("StasisEnd", "ChannelDestroyed"):
            self.note(ctx, event)
            self.leg_gone(ctx, channel_id, destroyed=kind == "ChannelDestroyed")

    def offer(self, ctx):
        """Ring the next available agent, or try again shortly."""
        row = ctx.reload()
        tried = ctx.scratch.setdefault("tried", set())
        failed_now = set()  # an agent whose leg cannot be created is not retried in this pass
        while row.campaign_id is not None:
            candidates = [a for a in self.available_agents(row.campaign_id)
                          if a not in failed_now]
            fresh = [a for a in candidates if a not in tried] or candidates
            channel_id = ids.attempt_channel(ctx.call_id, "agent", uuid.uuid4().hex[:6])
            agent_id = call_store.claim_agent(ctx.call_id, fresh, channel_id)
            if agent_id is None:
                break
            agent_pick.remember(row.campaign_id, agent_id)  # rrmemory: the next starts after it
            tried.add(agent_id)
            if self.ring_agent(ctx, agent_id, channel_id):
                return
            failed_now.add(agent_id)
            row = ctx.reload()
            if row.state != "requested":
                return
        if row.campaign_id is None or self.waited_enough(row):
            self.give_up(ctx)
            return
        gevent.spawn_later(RETRY_SECONDS, self.engine.dispatcher.enqueue, ctx.call_id,
                           {"type": "OmlRetry"})

    def waited_enough(self, row):
        """From the row, not from memory: a worker that restarts keeps the same limit."""
        return (call_store.now() - _aware(row.created_at)).total_seconds() >= self.wait_seconds

    def available_agents(self, campaign_id):
        """The campaign's available agents, best first (its strategy: services/agent_pick)."""
        return agent_pick.available_agents(campaign_id)

    def ring_agent(self, ctx, agent_id, channel_id):
        """Originate the claimed agent's leg; False (agent released) when it cannot ring."""
        extension = db.session.scalar(select(AgentProfile.sip_extension)
                                      .where(AgentProfile.id == agent_id))
        self.engine.presence.mirror(agent_id)
        row = ctx.reload()  # claim_agent just wrote agent_id: the headers name the agent
        number = row.number
        waited = (call_store.now() - _aware(row.created_at)).total_seconds()
        try:
            self.ari.originate(f"PJSIP/{extension}", appArgs=f"agent,{ctx.call_id}",
                               channelId=channel_id, timeout=self.agent_timeout,
                               callerId=f'"{number}" <{number}>',
                               variables=call_headers.agent_leg_variables(
                                   row, agent_id, wait_seconds=waited))
        except AriError as exc:
            log.info("call %s: agent %s not reachable: %s", ctx.call_id, agent_id, exc)
            self.release(ctx, channel_id)
            return False
        return True

    def release(self, ctx, channel_id, cause=None):
        agent_id = call_store.release_agent(ctx.call_id, channel_id, cause)
        if agent_id is not None:
            self.engine.presence.mirror(agent_id)
        return agent_id

    def agent_answered(self, ctx, agent_leg):
        row = ctx.row
        if row.state != "agent_ringing" or row.agent_channel_id != agent_leg:
            from .cleanup import hang_up
            hang_up(self.ari, agent_leg)  # a stale try, or the call ended meanwhile
            if row.state in ("ended", "failed"):
                self.is_over(ctx)
            return
        bridge_id, caller = ids.bridge(ctx.call_id), row.contact_channel_id
        call_store.add_legs(ctx.call_id, (bridge_id, "main", "bridge"))
        try:
            self.ari.answer(caller)
            self.ari.bridge_create(bridge_id, type="mixing")
            self.ari.bridge_add_channel(bridge_id, [caller, agent_leg])
        except AriError as exc:
            log.warning("call %s: cannot bridge: %s", ctx.call_id, exc)
            self.end(ctx, "failed", reasons.CALLER_HANGUP)
            return
        now = call_store.now()
        bridged = call_store.advance(ctx.call_id, "bridged", bridge_id=bridge_id,
                                     agent_answered_at=now, bridged_at=now)
        if bridged:
            recording.start(self.ari, self.settings, ctx.call_id, bridged)  # `record` campaigns

    def leg_gone(self, ctx, channel_id, destroyed):
        if ctx.torn_down:
            if not ctx.final:
                self.call_over(ctx)
            return
        row = ctx.row
        role = ctx.role(channel_id)
        cause = ctx.scratch.get("causes", {}).get(channel_id)
        gone = channel_id if destroyed else None
        if row.state in ("ended", "failed"):
            self.is_over(ctx)
            return
        if ctx.scratch.get("shutdown") and role in ("caller", "agent"):
            self.end(ctx, "ended" if row.state == "bridged" else "failed", reasons.ASTERISK_LOST,
                     cause=cause, gone=gone)
        elif role == "caller":
            bridged = row.state == "bridged"
            self.end(ctx, "ended" if bridged else "failed",
                     reasons.CONTACT_HANGUP if bridged else reasons.CALLER_HANGUP,
                     cause=cause, gone=gone)
        elif role == "agent" and channel_id == row.agent_channel_id:
            if row.state == "bridged":
                self.end(ctx, "ended", reasons.AGENT_HANGUP, cause=cause, gone=gone)
            elif destroyed or cause is not None:  # did not answer, rejected, unreachable
                self.release(ctx, channel_id, cause)
                self.offer(ctx)

    def give_up(self, ctx):
        """Nobody answered in time: hand the caller back to the dialplan, untouched."""
        row = ctx.row
        caller = row.contact_channel_id
        call_store.leg_gone(caller, state="released")
        self.end(ctx, "failed", reasons.NO_AGENT_AVAILABLE)
        try:
            self.ari.ring_stop(caller)
            self.ari.request("POST", f"/channels/{caller}/continue")
        except AriError as exc:
            log.info("call %s: caller gone before continue: %s", ctx.call_id, exc)


def _aware(moment):
    """SQLite gives back naive datetimes; they were stored in UTC."""
    if moment.tzinfo is None:
        from datetime import timezone
        moment = moment.replace(tzinfo=timezone.utc)
    return moment
