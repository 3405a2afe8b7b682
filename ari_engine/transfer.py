"""Blind transfers (contract-calls §2): to an agent, to an endpoint (an agent's extension or an
outside number), to a campaign, to an agent picked from a campaign.

    bridged ─(transfer)→ music into the call's bridge, old agent leg hung up (agent free), target
    rung on its own leg `oml-<call>-transfer_target-<n>` (X-OML-Origin: transfer)
    target answers ─→ the music stops, the target joins the call's bridge
    target busy / rejects / no answer in TRANSFER_TIMEOUT / unreachable ─→ call.transfer_failed
    with the reason, then: back to the transferring agent if available (once), else the
    call's campaign (waits with music like an inbound call, for INBOUND_WAIT_SECONDS), else
    the call ends with reason transfer_failed — the caller is never left alone with music.
    A campaign transfer offers the caller to the campaign's available agents, the idlest first
    (Inbound.available_agents: the campaign's strategy), one at a time, until the wait is over
    (then the call ends, no_agent_available).

The plan a transfer follows (mode, who transferred, tried agents, deadline) travels with its
`call.transfer_requested` event, so a worker that idled out or a restarted engine picks it up.
"""
import logging
import time
import uuid

import gevent

from oml_server.services import call_control_state as control_state

from . import ids, reasons
from .ari_client import AriError
from .cleanup import hang_up

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class Transfers:
    def __init__(self, control):
        self.control = control
        self.ari = control.ari
        self.engine = control.engine
        settings = control.settings
        self.wait_seconds = settings.get("INBOUND_WAIT_SECONDS", 30)

    # -- the command --------------------------------------------------------------------------

    def start(self, ctx, row, args):
        plan = {"mode": args.get("mode"), "from_agent_id": row.agent_id, "tried": [],
                "target_campaign_id": args.get("campaign_id"),
                "by_user_id": args.get("by_user_id")}
        if plan["mode"] == "campaign":
            self.to_campaign(ctx, row, plan)
            return
        plan.update(target_agent_id=args.get("target_agent_id"), endpoint=args.get("endpoint"))
        status = self.ring(ctx, row, plan)
        if status != "busy":
            return
        # Nothing changed: the caller is still with its agent.
        control_state.record("call.transfer_failed", ctx.call_id,
                             target_agent_id=plan["target_agent_id"], reason=reasons.TARGET_BUSY)
        if plan["target_campaign_id"] is not None:  # blind-campaign-agent: the campaign's next
            self.to_campaign(ctx, ctx.reload(), dict(plan, mode="campaign",
                                                     tried=[plan["target_agent_id"]]))

    # -- ringing one target -------------------------------------------------------------------

    def ring(self, ctx, row, plan):
        """Hand the call to one target: "ok", "busy" (target agent on another call: nothing
        changed) or "gone" (the call is no longer bridged)."""
        target_agent = plan.get("target_agent_id")
        leg = ids.attempt_channel(ctx.call_id, "transfer_target", uuid.uuid4().hex[:6])
        old_leg, old_agent = row.agent_channel_id, row.agent_id
        status = control_state.hand_over(ctx.call_id, leg, target_agent, old_agent, old_leg, plan)
        if status != "ok":
            return status
        ctx.scratch["transfer"] = plan
        ctx.adopt(leg, "transfer_target")
        self.park(ctx, row.contact_channel_id)
        if old_leg:
            hang_up(self.ari, old_leg)
        unreachable = self.control.ring(ctx, ctx.reload(), leg, target_agent,
                                        plan.get("endpoint"), "transfer_target") is not None
        # Device states after the target rings: two ARI and database round trips each, which
        # the caller need not wait for.
        for agent_id in {old_agent, target_agent} - {None}:
            self.engine.presence.mirror(agent_id)
        if unreachable:
            self.target_failed(ctx, leg, reasons.TARGET_UNREACHABLE)
        return "ok"

    def park(self, ctx, caller):
        """The caller waits in the call's own bridge, with music played into it (a held caller
        is brought back into it first). Not in the holding bridge: Asterisk empties a bridge
        whose only channels are "lonely" ones (its recorder, its music), so with the agent gone
        and the caller parked a recorded call's file would end at the transfer."""
        try:
            if control_state.is_held(ctx.call_id):
                self.control.unpark(ctx, caller)
            self.ari.bridge_start_moh(ids.bridge(ctx.call_id))
        except AriError as exc:  # music already on (a second target), or the caller just left
            log.debug("call %s: caller not given music: %s", ctx.call_id, exc)

    def music_off(self, ctx):
        try:
            self.ari.bridge_stop_moh(ids.bridge(ctx.call_id))
        except AriError as exc:  # no music was on
            log.debug("call %s: no music to stop: %s", ctx.call_id, exc)

    # -- the target's leg ---------------------------------------------------------------------

    def leg_event(self, ctx, event, leg, row):
        """An event of a target's leg of a live call (call_control.CallControl.handle)."""
        kind = event["type"]
        current = row.agent_channel_id == leg
        if kind == "StasisStart":
            if current:
                self.answered(ctx, row, leg)
            else:
                hang_up(self.ari, leg)  # a target given up on meanwhile
        elif kind == "StasisEnd" and current:
            # It had answered (a leg that never answers never enters the app): the agent the
            # call is with hung up.
            self.control.end_call(ctx, reasons.AGENT_HANGUP,
                                  cause=ctx.scratch.get("causes", {}).get(leg))
        elif kind == "ChannelDestroyed":
            self.control.note(ctx, event)
            if current and ctx.scratch.get("shutdown"):  # Asterisk stopping: nobody to go to
                self.control.end_call(ctx, reasons.ASTERISK_LOST, gone=leg)
            elif current:
                cause = ctx.scratch.get("causes", {}).get(leg)
                self.target_failed(ctx, leg, reasons.for_target_gone(cause), cause)

    def answered(self, ctx, row, leg):
        self.music_off(ctx)
        try:
            self.ari.bridge_add_channel(ids.bridge(ctx.call_id), leg)
        except AriError as exc:
            log.warning("call %s: transfer target not bridged: %s", ctx.call_id, exc)
            self.control.end_call(ctx, reasons.TRANSFER_FAILED)
            return
        control_state.answered(ctx.call_id, leg)
        if control_state.is_held(ctx.call_id):  # a held call that was transferred is not held
            control_state.record("call.unheld", ctx.call_id, leg=row.contact_channel_id)
        ctx.scratch.pop("transfer", None)

    def target_failed(self, ctx, leg, reason, cause=None):
        released = control_state.failed(ctx.call_id, leg, reason, cause)
        if released is not None:
            self.engine.presence.mirror(released)
        plan = ctx.scratch.get("transfer") or control_state.last_transfer(ctx.call_id) or {}
        self.fallback(ctx, plan)

    # -- what happens when nobody took it --------------------------------------------------

    def fallback(self, ctx, plan):
        row = ctx.reload()
        if row is None or row.state != "bridged":
            return
        if plan.get("mode") == "campaign":
            self.offer_campaign(ctx, row, plan)
            return
        back = plan.get("from_agent_id")
        if back is not None and not plan.get("returning") and control_state.can_take_back(back):
            again = dict(plan, mode="agent", target_agent_id=back, endpoint=None, returning=True)
            if self.ring(ctx, row, again) == "ok":
                return
            row = ctx.reload()
        campaign = plan.get("target_campaign_id") or row.campaign_id
        if campaign is not None:
            self.to_campaign(ctx, row, dict(plan, mode="campaign", target_campaign_id=campaign,
                                            tried=[]))
            return
        self.control.end_call(ctx, reasons.TRANSFER_FAILED)

    def to_campaign(self, ctx, row, plan):
        plan["deadline"] = time.time() + self.wait_seconds
        old_leg = row.agent_channel_id
        if not control_state.wait_for_campaign(ctx.call_id, plan["target_campaign_id"],
                                               row.agent_id, old_leg, plan):
            return
        self.park(ctx, row.contact_channel_id)
        if old_leg:
            hang_up(self.ari, old_leg)
        if row.agent_id is not None:
            self.engine.presence.mirror(row.agent_id)
        self.offer_campaign(ctx, ctx.reload(), plan)

    def offer_campaign(self, ctx, row, plan):
        """Ring the campaign's next available agent (the idlest first), or wait and retry; at
        the deadline the call ends (no_agent_available)."""
        ctx.scratch["transfer"] = plan
        inbound = self.engine.flows["inbound"]
        tried = plan.setdefault("tried", [])
        candidates = inbound.available_agents(plan["target_campaign_id"])
        for agent_id in [a for a in candidates if a not in tried] or candidates:
            tried.append(agent_id)
            status = self.ring(ctx, row, dict(plan, target_agent_id=agent_id, endpoint=None))
            if status in ("ok", "gone"):
                return
            row = ctx.reload()
        if time.time() >= plan.get("deadline", 0):
            self.control.end_call(ctx, reasons.NO_AGENT_AVAILABLE)
            return
        gevent.spawn_later(RETRY_SECONDS, self.engine.dispatcher.enqueue, ctx.call_id,
                           {"type": "OmlTransferRetry"})

    def timer(self, ctx, event):
        row = ctx.reload()
        if row is None or row.state != "bridged" or row.agent_channel_id is not None:
            return  # ended, or an agent is ringing or took it
        plan = ctx.scratch.get("transfer") or control_state.last_transfer(ctx.call_id) or {}
        if plan.get("mode") == "campaign":
            self.offer_campaign(ctx, row, plan)
