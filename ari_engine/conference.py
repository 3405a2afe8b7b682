"""Three-way calls (contract-calls §2 `3way`): agent, caller and a third party (an agent's
extension or an outside number) talk in the call's bridge.

    3way ─→ third party rung on `oml-<call>-third_party-<n>`; on answer it joins the bridge
    third party leaves ─→ agent and caller go on (call.third_party_left)
    agent leaves ─→ caller and third party go on; the third party is the call's agent leg now
    (the agent is free; `call.agent_left`)
    caller leaves ─→ agent and third party go on; the third party is the call's other side
    the last two: the call ends as any two-party call does

Who is still in the call is asked of Asterisk (the bridge's channels) only when an agent or
caller leg leaves a call that has a live third-party leg.
"""
import logging
import uuid

from oml_server.services import call_control_state as control_state

from . import call_store, ids, reasons
from .ari_client import AriError
from .cleanup import hang_up

log = logging.getLogger(__name__)


class Conferences:
    def __init__(self, control):
        self.control = control
        self.ari = control.ari
        self.engine = control.engine

    def add(self, ctx, row, args):
        target_agent = args.get("target_agent_id")
        leg = ids.attempt_channel(ctx.call_id, "third_party", uuid.uuid4().hex[:6])
        status = control_state.party_added(ctx.call_id, leg, "third_party",
                                           "call.third_party_requested", target_agent,
                                           endpoint=args.get("endpoint"))
        if status == "busy":
            control_state.record("call.third_party_failed", ctx.call_id,
                                 target_agent_id=target_agent, reason=reasons.TARGET_BUSY)
            return
        if status != "ok":
            return
        ctx.adopt(leg, "third_party")
        if self.control.ring(ctx, row, leg, target_agent, args.get("endpoint"),
                             "third_party") is not None:
            control_state.party_gone(ctx.call_id, "call.third_party_failed", leg, target_agent,
                                     reason=reasons.TARGET_UNREACHABLE)

    def leg_event(self, ctx, event, leg, row):
        """An event of a third party's leg of a live call (call_control.CallControl.handle)."""
        kind = event["type"]
        if kind == "StasisStart":
            try:
                self.ari.bridge_add_channel(ids.bridge(ctx.call_id), leg)
            except AriError as exc:
                log.info("call %s: third party not bridged: %s", ctx.call_id, exc)
                hang_up(self.ari, leg)
                return
            control_state.record("call.third_party_joined", ctx.call_id, leg=leg)
            return
        if kind not in ("StasisEnd", "ChannelDestroyed"):
            return
        self.control.note(ctx, event)
        cause = ctx.scratch.get("causes", {}).get(leg)
        if leg == row.agent_channel_id:  # it had taken the agent's place: the last two
            self.control.end_call(ctx, reasons.AGENT_HANGUP, cause=cause,
                                  gone=leg if kind == "ChannelDestroyed" else None)
        elif leg == row.contact_channel_id:
            self.control.end_call(ctx, reasons.CONTACT_HANGUP, cause=cause,
                                  gone=leg if kind == "ChannelDestroyed" else None)
        elif leg in {a for a, _r, _res in call_store.legs_of(ctx.call_id)}:
            answered = kind == "StasisEnd"
            control_state.party_gone(
                ctx.call_id, "call.third_party_left" if answered else "call.third_party_failed",
                leg, control_state.third_party_agent(ctx.call_id, leg),
                reason=None if answered else reasons.for_target_gone(cause), hangup_cause=cause)

    def survivor(self, ctx, row, leaving):
        """A third party that joined and is neither the call's agent nor its other side, when
        `leaving` (the agent's or the caller's leg) goes; else None."""
        third = [a for a, role, res in call_store.legs_of(ctx.call_id)
                 if role == "third_party" and res == "channel"
                 and a not in (row.agent_channel_id, row.contact_channel_id)]
        if not third:
            return None
        try:
            present = set(self.ari.bridge(ids.bridge(ctx.call_id)).get("channels") or [])
        except AriError:
            return None
        joined = [a for a in third if a in present]
        return joined[0] if joined else None

    def party_left(self, ctx, row, leaving, role):
        """The agent or the caller left: True when a third party goes on with the other one."""
        survivor = self.survivor(ctx, row, leaving)
        if survivor is None:
            return False
        if role == "agent":
            control_state.take_over(ctx.call_id, survivor,
                                    control_state.third_party_agent(ctx.call_id, survivor),
                                    row.agent_id, leaving, "call.agent_left")
            if row.agent_id is not None:
                self.engine.presence.mirror(row.agent_id)
        else:
            control_state.contact_replaced(ctx.call_id, leaving, survivor)
        return True
