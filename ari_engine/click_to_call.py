"""Click-to-call (makeCall, contract §2.4): ring the agent first; on answer dial the contact
into a mixing bridge with the agent (who hears it ring), and keep both legs' fates tied.

The REST side (`backend.place_click_to_call`) originates the agent leg into the app with our
own channel id; everything after that happens here, driven by events, one call at a time
(the dispatcher serialises a call's events). Every transition is written as it happens.
"""
import logging

from . import call_store, ids, reasons
from .ari_client import AriError, AriNotFound

log = logging.getLogger(__name__)


class ClickToCall:
    kind = "click_to_call"

    def __init__(self, ari, settings):
        self.ari = ari
        self.dial_template = settings["DIAL_TEMPLATE"]
        self.contact_timeout = settings["CONTACT_ANSWER_TIMEOUT"]

    # -- events -----------------------------------------------------------------------------

    def handle(self, call, event, memo):
        """`memo` is this call's scratch state (dial status, causes, playback) in the engine."""
        kind = event["type"]
        channel_id = (event.get("channel") or event.get("peer") or {}).get("id")
        if kind == "StasisStart" and channel_id == call.agent_channel_id:
            self.agent_answered(call, memo)
        elif kind == "Dial" and event.get("peer", {}).get("id") == ids.contact_channel(call.id):
            self.contact_dial_progress(call, event, memo)
        elif kind == "ChannelStateChange" and channel_id == ids.contact_channel(call.id):
            if event["channel"]["state"] == "Up":
                self.contact_answered(call, memo)
        elif kind in ("ChannelHangupRequest", "ChannelDestroyed"):
            reasons.note_hangup(memo, channel_id, event)
            if kind == "ChannelDestroyed":
                self.leg_gone(call, channel_id, memo)
        elif kind == "StasisEnd":
            if call.state != "bridged" and channel_id not in memo.get("causes", {}):
                # Not bridged yet: the reason (busy, no answer, rejected…) comes with the cause
                # on ChannelDestroyed, which Asterisk sends right after StasisEnd.
                return
            self.leg_gone(call, channel_id, memo)

    def agent_answered(self, call, memo):
        agent_leg = call.agent_channel_id
        if not call_store.advance(call.id, "agent_answered", agent_answered_at=call_store.now()):
            self.teardown(call)  # hung up or failed meanwhile: nothing may stay up
            return
        bridge_id, contact_leg = ids.bridge(call.id), ids.contact_channel(call.id)
        try:
            self.ari.bridge_create(bridge_id, type="mixing")
            call_store.set_fields(call.id, bridge_id=bridge_id)
            self.ari.bridge_add_channel(bridge_id, agent_leg)
            self.ari.channel_create(self.dial_template.format(number=call.number),
                                    appArgs=f"contact,{call.id}", channelId=contact_leg)
            call_store.set_fields(call.id, contact_channel_id=contact_leg)
            self.ari.bridge_add_channel(bridge_id, contact_leg)
            self.ari.dial(contact_leg, timeout=self.contact_timeout)
        except AriError as exc:
            log.warning("call %s: cannot dial the contact: %s", call.id, exc)
            call_store.finish(call.id, "failed", reasons.CONTACT_UNREACHABLE)
            self.teardown(call)
            return
        call_store.advance(call.id, "contact_ringing")

    def contact_dial_progress(self, call, event, memo):
        status = event.get("dialstatus") or ""
        memo["dialstatus"] = status
        if status in ("RINGING", "PROGRESS") and "ringback" not in memo:
            memo["ringback"] = self.start_ringback(call)
        elif status == "ANSWER":
            self.contact_answered(call, memo)

    def contact_answered(self, call, memo):
        self.stop_ringback(memo)
        call_store.advance(call.id, "bridged", bridged_at=call_store.now())

    def leg_gone(self, call, channel_id, memo):
        """Either leg left: end the call with its reason and hang up whatever remains."""
        self.stop_ringback(memo)
        state = call_store.get(call.id).state
        cause = memo.get("causes", {}).get(channel_id)
        final, reason = reasons.for_leg_gone(
            state, is_agent_leg=channel_id == call.agent_channel_id,
            cause=cause, dialstatus=memo.get("dialstatus"), shutdown=memo.get("shutdown", False))
        call_store.finish(call.id, final, reason, hangup_cause=cause)
        if not memo.get("torn_down"):  # the other leg's own events arrive after this
            memo["torn_down"] = True
            self.teardown(call)

    # -- helpers ----------------------------------------------------------------------------

    def start_ringback(self, call):
        """Let the agent hear the contact ringing when the trunk sends no early media."""
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

    def teardown(self, call):
        """Hang up both legs and destroy the bridge; 404 means already done."""
        legs = [c for c in (call.agent_channel_id, call.contact_channel_id) if c]
        teardown(self.ari, call.id, extra_channels=legs)


def teardown(ari, call_id, extra_channels=()):
    channels = dict.fromkeys((ids.agent_channel(call_id), ids.contact_channel(call_id),
                              *extra_channels))
    for channel_id in channels:
        try:
            ari.hangup(channel_id)
        except AriNotFound:
            pass
        except AriError as exc:
            log.warning("call %s: hangup %s: %s", call_id, channel_id, exc)
    try:
        ari.bridge_destroy(ids.bridge(call_id))
    except AriNotFound:
        pass
    except AriError as exc:
        log.warning("call %s: destroy bridge: %s", call_id, exc)
