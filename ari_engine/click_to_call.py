"""Click-to-call (makeCall, contract §2.4): ring the agent first; on answer put the agent in a
mixing bridge that plays a ringing tone, originate the contact into the app and, when it
answers, add it to the bridge; keep both legs' fates tied.

Why not the early-media flow (channels/create + add to bridge + dial): in Asterisk 16 every
command queued to a channel in Stasis that carries no media waits for its ~200 ms poll, so the
contact's addChannel and dial cost ~170 ms more per call than this flow (~80 ms from makeCall to
both legs bridged on the lab; see bench/README.md "Calls"). The agent still hears the contact
ring: `tone:ring` played into the bridge from the agent's answer until the contact answers.
What it gives up is in-band early media from the carrier (a 183 announcement before answer).

The REST side (`backend.place_click_to_call`) originates the agent leg into the app with our
own channel id; everything after that happens here, driven by events, one call at a time
(the dispatcher serialises a call's events). Every transition is written as it happens.
"""
import logging
from collections import namedtuple

from . import call_store, ids, reasons
from .ari_client import AriError
from .cleanup import destroy_bridge, hang_up

log = logging.getLogger(__name__)


class _Legs(namedtuple("_Legs", "id agent_channel_id contact_channel_id")):
    """What contact_answered/contact_bridged read of a click-to-call row: all derived from the
    call id (the backend names the agent's leg, this flow the contact's)."""

    @classmethod
    def of(cls, call_id):
        return cls(call_id, ids.agent_channel(call_id), ids.contact_channel(call_id))


class ClickToCall:
    kind = "click_to_call"
    # The only events handle() acts on; the dispatcher drops the others (ChannelVarset,
    # ChannelDialplan, Playback*, ChannelStateChange…) before loading the call: under load
    # those loads were most of the engine's CPU.
    events = frozenset({"StasisStart", "StasisEnd", "ChannelEnteredBridge", "Dial",
                        "ChannelHangupRequest", "ChannelDestroyed"})

    def __init__(self, ari, settings):
        self.ari = ari
        self.dial_template = settings["DIAL_TEMPLATE"]
        self.contact_timeout = settings["CONTACT_ANSWER_TIMEOUT"]

    # -- events -----------------------------------------------------------------------------

    def handle_without_call(self, call_id, event, memo):
        """True when `event` is fully handled (or ignored) without the call's row: the
        dispatcher then skips loading it. Same effects as handle() for these events: the agent
        leg's Dial and ChannelEnteredBridge are ignored there, and a contact Dial or a
        ChannelHangupRequest only note something in `memo`. Under load these were half the
        events that loaded the row."""
        kind = event["type"]
        if kind == "ChannelEnteredBridge":
            return (event.get("channel") or {}).get("id") != ids.contact_channel(call_id)
        if kind == "Dial":
            if event.get("peer", {}).get("id") == ids.contact_channel(call_id):
                memo["dialstatus"] = event.get("dialstatus") or ""
            return True
        if kind == "ChannelHangupRequest":
            channel_id = (event.get("channel") or event.get("peer") or {}).get("id")
            reasons.note_hangup(memo, channel_id, event)
            return True
        return False

    def handle_by_id(self, call_id, event, memo):
        """True when `event` is handled knowing only the call's id (the dispatcher then loads
        no row; the database is written as in handle()): the contact answering and entering
        the bridge act on ids derived from the call id, never on the row."""
        kind = event["type"]
        if kind not in ("StasisStart", "ChannelEnteredBridge") or memo.get("torn_down"):
            return False
        channel_id = (event.get("channel") or event.get("peer") or {}).get("id")
        if channel_id != ids.contact_channel(call_id):
            return False
        legs = _Legs.of(call_id)
        if kind == "StasisStart":
            self.contact_answered(legs, memo)
        else:
            self.contact_bridged(legs, memo)
        return True

    def handle(self, call, event, memo):
        """`memo` is this call's scratch state (dial status, causes, playback) in the engine."""
        kind = event["type"]
        channel_id = (event.get("channel") or event.get("peer") or {}).get("id")
        contact_leg = ids.contact_channel(call.id)
        if kind == "StasisStart" and channel_id == call.agent_channel_id:
            self.agent_answered(call, memo)
        elif kind == "StasisStart" and channel_id == contact_leg:
            self.contact_answered(call, memo)
        elif kind == "ChannelEnteredBridge" and channel_id == contact_leg:
            self.contact_bridged(call, memo)
        elif kind == "Dial" and event.get("peer", {}).get("id") == contact_leg:
            memo["dialstatus"] = event.get("dialstatus") or ""
        elif kind in ("ChannelHangupRequest", "ChannelDestroyed"):
            reasons.note_hangup(memo, channel_id, event)
            if kind == "ChannelDestroyed":
                self.leg_gone(call, channel_id, memo, destroyed=True)
        elif kind == "StasisEnd":
            if call.state != "bridged" and channel_id not in memo.get("causes", {}):
                # Not bridged yet: the reason (busy, no answer, rejected…) comes with the cause
                # on ChannelDestroyed, which Asterisk sends right after StasisEnd.
                return
            self.leg_gone(call, channel_id, memo)

    def agent_answered(self, call, memo):
        agent_leg = call.agent_channel_id
        bridge_id, contact_leg = ids.bridge(call.id), ids.contact_channel(call.id)
        # The bridge id is written with the answer, in the same UPDATE, before the bridge
        # exists: one transaction less per call, and a reconcile running meanwhile sees the
        # bridge as owned (on any failure below the call ends and the bridge goes anyway).
        if not call_store.advance(call.id, "agent_answered", agent_answered_at=call_store.now(),
                                  bridge_id=bridge_id):
            self.teardown(call)  # hung up or failed meanwhile: nothing may stay up
            return
        try:
            self.ari.bridge_create(bridge_id, type="mixing")
            self.ari.bridge_add_channel(bridge_id, agent_leg)
            memo["ringback"] = self.start_ringback(call)
            self.ari.originate(self.dial_template.format(number=call.number),
                               appArgs=f"contact,{call.id}", channelId=contact_leg,
                               timeout=self.contact_timeout)
        except AriError as exc:
            log.warning("call %s: cannot dial the contact: %s", call.id, exc)
            call_store.finish(call.id, "failed", reasons.CONTACT_UNREACHABLE)
            self.teardown(call)
            return
        call_store.advance(call.id, "contact_ringing", contact_channel_id=contact_leg)

    def contact_answered(self, call, memo):
        """The contact answered (its leg entered the app): join it to the agent's bridge."""
        memo["dialstatus"] = "ANSWER"
        try:
            self.ari.bridge_add_channel(ids.bridge(call.id), ids.contact_channel(call.id))
        except AriError as exc:
            log.warning("call %s: cannot bridge the contact: %s", call.id, exc)
            call_store.finish(call.id, "failed", reasons.CONTACT_UNREACHABLE)
            memo["torn_down"] = True
            self.teardown(call)

    def contact_bridged(self, call, memo):
        """Both legs are in the bridge: the call is set up."""
        self.stop_ringback(memo)
        call_store.advance(call.id, "bridged", bridged_at=call_store.now())

    def leg_gone(self, call, channel_id, memo, destroyed=False):
        """Either leg left: end the call with its reason and hang up whatever remains (not the
        leg whose ChannelDestroyed this is: a request that could only answer 404)."""
        self.stop_ringback(memo)
        state = call_store.get(call.id).state
        cause = memo.get("causes", {}).get(channel_id)
        final, reason = reasons.for_leg_gone(
            state, is_agent_leg=channel_id == call.agent_channel_id,
            cause=cause, dialstatus=memo.get("dialstatus"), shutdown=memo.get("shutdown", False))
        call_store.finish(call.id, final, reason, hangup_cause=cause)
        if not memo.get("torn_down"):  # the other leg's own events arrive after this
            memo["torn_down"] = True
            self.teardown(call, gone=channel_id if destroyed else None)

    # -- helpers ----------------------------------------------------------------------------

    def start_ringback(self, call):
        """Let the agent hear the contact ringing: a tone into the bridge until it answers."""
        playback_id = f"{ids.bridge(call.id)}-ringback"
        try:
            self.ari.request("POST", f"/bridges/{ids.bridge(call.id)}/play/{playback_id}",
                             {"media": "tone:ring"})
        except AriError as exc:
            log.debug("call %s: no ringback tone: %s", call.id, exc)
            return None
        return playback_id

    def stop_ringback(self, memo):
        playback_id = memo.pop("ringback", None)
        if playback_id:
            try:
                self.ari.request("DELETE", f"/playbacks/{playback_id}")
            except AriError:
                pass  # already finished or gone with the bridge

    def teardown(self, call, gone=None):
        """Hang up both legs (but `gone`, destroyed already) and destroy the bridge; 404 means
        already done."""
        legs = [c for c in (call.agent_channel_id, call.contact_channel_id) if c]
        teardown(self.ari, call.id, extra_channels=legs, skip=(gone,))


def teardown(ari, call_id, extra_channels=(), skip=()):
    channels = dict.fromkeys((ids.agent_channel(call_id), ids.contact_channel(call_id),
                              *extra_channels))
    for channel_id in channels:
        if channel_id not in skip:
            hang_up(ari, channel_id)
    destroy_bridge(ari, ids.bridge(call_id))
