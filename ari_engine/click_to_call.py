"""Click-to-call (makeCall, contract §2.4): ring the agent first; on answer put the agent in a
mixing bridge that plays a ringing tone, originate the contact into the app and, when it
answers, add it to the bridge; keep both legs' fates tied.

    requested ─(REST originates the agent leg)→ agent_ringing ─(agent StasisStart)→
    agent_answered ─(contact originated)→ contact_ringing ─(contact StasisStart: add to bridge;
    ChannelEnteredBridge)→ bridged ─(either leg gone)→ ended
    any step ─(a leg gone, hangupCall, the sweep)→ failed / ended, with its reason

Why not the early-media flow (channels/create + add to bridge + dial): in Asterisk 16 every
command queued to a channel in Stasis that carries no media waits for its ~200 ms poll, so the
contact's addChannel and dial cost ~170 ms more per call than this flow. The agent still hears
the contact ring: `tone:ring` played into the bridge from the agent's answer until the contact
answers. What it gives up is in-band early media from the carrier.

Every channel and bridge is recorded as a leg in the same transaction as the step that creates
it, before the ARI request, so an event, a restart or the sweep always finds its call.
"""
import logging

from . import call_store, ids, reasons, recording
from .ari_client import AriError
from .flow import Flow, channel_of

log = logging.getLogger(__name__)


class ClickToCall(Flow):
    kind = "click_to_call"
    events = frozenset({"StasisStart", "StasisEnd", "ChannelEnteredBridge", "Dial",
                        "ChannelHangupRequest", "ChannelDestroyed"})

    def __init__(self, engine):
        super().__init__(engine)
        self.dial_template = self.settings["DIAL_TEMPLATE"]
        self.contact_timeout = self.settings["CONTACT_ANSWER_TIMEOUT"]

    def handle(self, ctx, event):
        kind, channel_id = event["type"], channel_of(event)
        if kind == "Dial":
            if ctx.role(channel_id) == "contact":
                ctx.scratch["dialstatus"] = event.get("dialstatus") or ""
            return
        if kind == "ChannelHangupRequest":
            self.note(ctx, event)
            return
        role = ctx.role(channel_id)
        if role not in ("agent", "contact"):
            return
        if kind == "StasisStart":
            if role == "agent":
                self.agent_answered(ctx, channel_id)   # checks the call is live as it moves it
            elif not self.is_over(ctx):   # hung up meanwhile: nothing is bridged afterwards
                self.contact_answered(ctx, channel_id)
        elif kind == "ChannelEnteredBridge" and role == "contact":
            self.contact_bridged(ctx)
        elif kind == "ChannelDestroyed":
            self.note(ctx, event)
            self.leg_gone(ctx, channel_id, role, destroyed=True)
        elif kind == "StasisEnd":
            if ctx.row is not None and ctx.row.state != "bridged" \
                    and channel_id not in ctx.scratch.get("causes", {}):
                # Not bridged yet: the reason (busy, no answer, rejected…) comes with the cause
                # on ChannelDestroyed, which Asterisk sends right after StasisEnd.
                return
            self.leg_gone(ctx, channel_id, role)

    # -- steps ------------------------------------------------------------------------------

    def answer_agent(self, ctx, agent_leg):
        """The agent's leg is up in Stasis. Ours was answered by the phone; a flow whose agent
        called in (outbound) answers it here."""

    def agent_answered(self, ctx, agent_leg):
        bridge_id, contact_leg = ids.bridge(ctx.call_id), ids.contact_channel(ctx.call_id)
        # Bridge and contact leg recorded with the answer, before they exist: a hang-up or the
        # sweep meanwhile sees them as the call's and tears them down with it. The conditional
        # step is the check that the call is still live (hung up meanwhile: nothing is dialled
        # afterwards), and it returns the number to dial: no read of the row first.
        call = call_store.advance(ctx.call_id, "agent_answered",
                                  agent_answered_at=call_store.now(), bridge_id=bridge_id,
                                  legs=[(bridge_id, "main", "bridge"), (contact_leg, "contact")])
        if not call:
            if not self.is_over(ctx):   # ended: is_over tore down what was left, again
                self.teardown(ctx)
                self.call_over(ctx)
            return
        self.answer_agent(ctx, agent_leg)
        try:
            self.ari.bridge_create(bridge_id, type="mixing")
            self.ari.bridge_add_channel(bridge_id, agent_leg)
            self.start_ringback(ctx, bridge_id)
            self.ari.originate(self.dial_target(call),
                               appArgs=f"contact,{ctx.call_id}", channelId=contact_leg,
                               timeout=self.contact_timeout)
        except AriError as exc:
            log.warning("call %s: cannot dial the contact: %s", ctx.call_id, exc)
            self.end(ctx, "failed", reasons.CONTACT_UNREACHABLE)
            return
        if not call_store.advance(ctx.call_id, "contact_ringing", contact_channel_id=contact_leg):
            # Ended (hangupCall) while the contact was being originated: it must not ring on.
            self.teardown(ctx, legs=[(contact_leg, "contact", "channel"),
                                     (bridge_id, "main", "bridge")], again=True)
            self.call_over(ctx)

    def dial_target(self, call):
        """The contact's endpoint: a number through the trunk; a call outside any campaign to
        an agent's extension (make_call_outside_campaign) rings that agent's phone."""
        if call.campaign_id is None:
            from sqlalchemy import select

            from oml_server.extensions import db
            from oml_server.models import AgentProfile
            if db.session.scalar(select(AgentProfile.id).where(
                    AgentProfile.sip_extension == call.number)) is not None:
                return f"PJSIP/{call.number}"
        return self.dial_template.format(number=call.number)

    def contact_answered(self, ctx, contact_leg):
        """The contact answered (its leg entered the app): join it to the agent's bridge."""
        ctx.scratch["dialstatus"] = "ANSWER"
        try:
            self.ari.bridge_add_channel(ids.bridge(ctx.call_id), contact_leg)
        except AriError as exc:
            log.warning("call %s: cannot bridge the contact: %s", ctx.call_id, exc)
            self.end(ctx, "failed", reasons.CONTACT_UNREACHABLE)
            return
        # The tone stops as the contact is added, not once it has entered: the bridged step
        # then waits for no ARI request (the agent hears at most a few ms of silence).
        self.stop_ringback(ctx)

    def contact_bridged(self, ctx):
        """Both legs are in the bridge: the call is set up."""
        self.stop_ringback(ctx)   # nothing to stop once contact_answered did (a dict lookup)
        bridged = call_store.advance(ctx.call_id, "bridged", bridged_at=call_store.now())
        if bridged:
            recording.start(self.ari, self.settings, ctx.call_id, bridged)  # `record` campaigns

    def leg_gone(self, ctx, channel_id, role, destroyed=False):
        """Either leg left: end the call with its reason and hang up whatever remains (not the
        leg whose ChannelDestroyed this is: a request that could only answer 404)."""
        if ctx.torn_down:
            if not ctx.final:
                self.call_over(ctx)
            return
        self.stop_ringback(ctx)
        if ctx.row is None:
            return
        state = ctx.row.state
        cause = ctx.scratch.get("causes", {}).get(channel_id)
        final, reason = reasons.for_leg_gone(
            state, is_agent_leg=role == "agent", cause=cause,
            dialstatus=ctx.scratch.get("dialstatus"), shutdown=ctx.scratch.get("shutdown", False))
        self.end(ctx, final, reason, cause=cause, gone=channel_id if destroyed else None)

    # -- ring tone --------------------------------------------------------------------------

    def start_ringback(self, ctx, bridge_id):
        """Let the agent hear the contact ringing: a tone into the bridge until it answers."""
        playback_id = f"{bridge_id}-ringback"
        try:
            self.ari.request("POST", f"/bridges/{bridge_id}/play/{playback_id}",
                             {"media": "tone:ring"})
        except AriError as exc:
            # Without chan_bridge_media Asterisk cannot play into a bridge; the connect-time
            # check says so once (runner.check_asterisk), so a debug line per call is enough.
            log.debug("call %s: no ringback tone: %s", ctx.call_id, exc)
            return
        ctx.scratch["ringback"] = playback_id
