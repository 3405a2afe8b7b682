"""Consultative (attended) transfers (contract-calls §2): start, complete, cancel.

    start ─→ music into the call's bridge (the caller stays there: a recorded call goes on in
    one file), the agent moves into the consult bridge `oml-<call>-consult`, the target is
    rung on `oml-<call>-consult-<n>` (X-OML-Origin: transfer)
    target answers ─→ it joins the agent in the consult bridge: they talk, the caller does
    not hear them
    complete (target answered) ─→ target joins the caller in the call's bridge, the music
    stops, the first agent's leg is hung up (the agent is free)
    cancel ─→ target hung up, agent back with the caller, music stops
    target does not answer (TRANSFER_TIMEOUT), rejects, or hangs up ─→ as cancel, with the reason
    agent hangs up during the consultation ─→ the target takes the call: at once when it had
    answered (what a PBX does for an attended transfer completed by hanging up), else as a
    blind transfer still ringing (transfer.py's fallbacks then apply)
    hold / unhold during the consultation ─→ noted only: the caller already waits with music

Whether a consultation is under way, and in which step, is read from the call's consult events
(`call_control_state.consult_state`), so a worker that idled out loses nothing. The consult
bridge, like the holding one, is created on the first consultation and kept (empty between
consultations) until the call ends (call_bridges says why).
"""
import logging
import uuid

from oml_server.services import call_control_state as control_state

from . import call_store, ids, reasons
from .ari_client import AriError
from .call_bridges import create_once
from .cleanup import hang_up

log = logging.getLogger(__name__)


def consult_bridge(call_id):
    return f"{ids.bridge(call_id)}-consult"


class Consults:
    def __init__(self, control):
        self.control = control
        self.ari = control.ari
        self.engine = control.engine

    # -- commands -----------------------------------------------------------------------------

    def start(self, ctx, row, args):
        if control_state.consult_state(ctx.call_id)[0] is not None:
            return  # one at a time (the REST layer refuses a second one already)
        target_agent = args.get("target_agent_id")
        leg = ids.attempt_channel(ctx.call_id, "consult", uuid.uuid4().hex[:6])
        status = control_state.party_added(ctx.call_id, leg, "consult", "call.consult_started",
                                           target_agent, endpoint=args.get("endpoint"))
        if status == "busy":
            control_state.record("call.consult_failed", ctx.call_id, reason=reasons.TARGET_BUSY,
                                 target_agent_id=target_agent)
            return
        if status != "ok":
            return
        ctx.adopt(leg, "consult")
        # The caller waits in the call's own bridge (transfer.park: never the holding bridge,
        # which would leave the recorder alone there and end the file); the agent waits for
        # the target in the consult bridge, out of the caller's hearing.
        self.control.transfers.park(ctx, row.contact_channel_id)
        bridge_id = consult_bridge(ctx.call_id)
        call_store.add_legs(ctx.call_id, (bridge_id, "consult", "bridge"))
        try:
            create_once(self.ari, bridge_id, "mixing")
            self.ari.bridge_add_channel(bridge_id, row.agent_channel_id)
        except AriError as exc:  # the agent just left (its hang-up hands the call over)
            log.debug("call %s: agent not moved to the consultation: %s", ctx.call_id, exc)
        if target_agent is not None:
            self.engine.presence.mirror(target_agent)
        if self.control.ring(ctx, row, leg, target_agent, args.get("endpoint"),
                             "consult") is not None:
            self.over(ctx, row, leg, target_agent, "call.consult_failed",
                      reason=reasons.TARGET_UNREACHABLE)

    def complete(self, ctx, row, args):
        state, started = control_state.consult_state(ctx.call_id)
        if state != "answered":
            return  # refused by the REST layer with its reason
        self.hand_to_target(ctx, row, started, "call.consult_completed")

    def cancel(self, ctx, row, args):
        state, started = control_state.consult_state(ctx.call_id)
        if state is None:
            return
        leg = started.get("leg")
        self.over(ctx, row, leg, started.get("target_agent_id"), "call.consult_cancelled")
        hang_up(self.ari, leg)

    # -- the consult leg ----------------------------------------------------------------------

    def leg_event(self, ctx, event, leg, row):
        """An event of a consult leg of a live call (call_control.CallControl.handle)."""
        kind = event["type"]
        if row.agent_channel_id == leg:  # the target took the call: it is the call's agent leg
            self.control.transfers.leg_event(ctx, event, leg, row)
            return
        state, started = control_state.consult_state(ctx.call_id)
        ours = state is not None and started.get("leg") == leg
        if kind == "StasisStart":
            if ours and state == "ringing":
                self.answered(ctx, row, leg)
            else:
                hang_up(self.ari, leg)  # cancelled meanwhile
        elif kind in ("StasisEnd", "ChannelDestroyed") and ours:
            self.control.note(ctx, event)
            cause = ctx.scratch.get("causes", {}).get(leg)
            reason = (reasons.TARGET_HANGUP if state == "answered"
                      else reasons.for_target_gone(cause))
            self.over(ctx, row, leg, started.get("target_agent_id"), "call.consult_failed",
                      reason=reason, hangup_cause=cause)

    def answered(self, ctx, row, leg):
        """The target joins the agent in the consult bridge; the caller still hears music."""
        try:
            self.ari.bridge_add_channel(consult_bridge(ctx.call_id), leg)
        except AriError as exc:
            log.warning("call %s: consult not bridged: %s", ctx.call_id, exc)
            return
        control_state.record("call.consult_answered", ctx.call_id, leg=leg)

    def agent_left(self, ctx, row):
        """The consulting agent hung up: the target takes the call (see the module's doc).
        True when a consultation was under way."""
        state, started = control_state.consult_state(ctx.call_id)
        if state is None:
            return False
        self.hand_to_target(ctx, row, started, "call.consult_completed", ringing=state == "ringing")
        return True

    # -- shared -------------------------------------------------------------------------------

    def hand_to_target(self, ctx, row, started, type_, ringing=False):
        leg, target_agent = started.get("leg"), started.get("target_agent_id")
        old_leg = row.agent_channel_id
        if not control_state.take_over(ctx.call_id, leg, target_agent, row.agent_id, old_leg,
                                       type_, target_agent_id=target_agent):
            return
        if row.agent_id is not None:
            self.engine.presence.mirror(row.agent_id)
        if old_leg:
            hang_up(self.ari, old_leg)
        if ringing:
            return  # the target's answer joins it to the caller (transfer.py)
        self.control.transfers.answered(ctx, ctx.reload(), leg)

    def over(self, ctx, row, leg, target_agent, type_, **data):
        """No transfer after all: the agent is back with the caller, the music stops."""
        control_state.party_gone(ctx.call_id, type_, leg, target_agent, **data)
        if target_agent is not None:
            self.engine.presence.mirror(target_agent)
        try:
            self.ari.bridge_add_channel(ids.bridge(ctx.call_id), row.agent_channel_id)
        except AriError as exc:  # the agent just left
            log.debug("call %s: agent not back from the consultation: %s", ctx.call_id, exc)
        self.control.transfers.music_off(ctx)
        if control_state.is_held(ctx.call_id):  # held during the consultation: not any more
            control_state.record("call.unheld", ctx.call_id, leg=row.contact_channel_id)
