"""A supervisor listens in on a bridged call: spy, whisper, barge, take-call.

    REST (action_on_agent, call/spy) → `ring(call, phone, mode)`: the supervisor's phone is
    originated into the app as a leg of the call (`oml-<call>-supervisor-<n>`, role supervisor)
    supervisor answers (StasisStart) →
      spy      a snoop on the agent's channel (spy both, whisper none; role snoop) and the
               supervisor in a bridge of their own (`oml-<call>-spy-<n>`): it hears both
               sides, nobody hears it
      whisper  the same snoop with whisper out: what the supervisor says goes out to the
               agent's phone only; the caller does not hear it (whisper_in: call/spy's
               `whisper=in`, the caller hears it and the agent does not)
      barge    the supervisor joins the call's mixing bridge: everybody hears everybody
      take_call  the supervisor joins the call's bridge, the agent's leg is hung up and the
               agent is free (`call_state.take_over`); the call is the supervisor's until
               either it or the contact hangs up
    supervisor hangs up → its snoop and bridge go; after a take-call the call ends.
    the call ends → its teardown hangs up the supervisor's legs with the rest (they are legs).

The legs belong to the call, so events reach the call's worker; the dispatcher hands events of
the roles in `roles` (and of an agent leg a take-call released) to this flow, whatever the
call's own flow is.
"""
import logging
import uuid

from . import call_store, ids, reasons
from .ari_client import AriError
from .cleanup import hang_up
from .flow import Flow, channel_of, teardown_legs

log = logging.getLogger(__name__)

MODES = ("spy", "whisper", "whisper_in", "barge", "take_call")
# Snoop directions on the agent's channel: "out" is what goes out to the agent's phone (the
# agent hears the supervisor), "in" what comes in from it towards the call (the caller does).
SNOOP = {"spy": {"spy": "both", "whisper": "none"}, "whisper": {"spy": "both", "whisper": "out"},
         "whisper_in": {"spy": "both", "whisper": "in"}}


def supervisor_channel(call_id):
    return ids.attempt_channel(call_id, "supervisor", uuid.uuid4().hex[:6])


def _attempt(channel_id):
    """`abc123` of `oml-<call>-supervisor-abc123`: names its snoop and bridge."""
    return channel_id.rsplit("-", 1)[-1]


def snoop_channel(call_id, attempt):
    return ids.attempt_channel(call_id, "snoop", attempt)


def spy_bridge(call_id, attempt):
    return f"{ids.bridge(call_id)}-spy-{attempt}"


def ring(ari, settings, call, extension, mode, supervisor_id):
    """Originate the supervisor's phone into the call (REST side, ARI requests only). The leg
    is recorded first, with its event. Raises AriError when the phone cannot ring."""
    channel_id = supervisor_channel(call.id)
    call_store.note(call.id, "call.supervisor_ringing", legs=[(channel_id, "supervisor")],
                    mode=mode, supervisor_id=supervisor_id, channel=channel_id)
    try:
        ari.originate(f"PJSIP/{extension}", appArgs=f"supervision,{call.id},{mode},{supervisor_id}",
                      channelId=channel_id, timeout=settings["AGENT_ANSWER_TIMEOUT"],
                      callerId=f'"{mode}" <{call.number}>')
    except AriError:
        call_store.leg_gone(channel_id)
        raise
    return channel_id


class Supervision(Flow):
    kind = "supervision"
    roles = ("supervisor", "snoop")
    events = frozenset({"StasisStart", "StasisEnd", "ChannelDestroyed"})

    def handle(self, ctx, event):
        kind, channel_id = event["type"], channel_of(event)
        role = ctx.role(channel_id)
        if kind == "StasisStart":
            if role == "supervisor":
                self.answered(ctx, channel_id, event.get("args") or [])
            return
        call_store.leg_gone(channel_id, event.get("cause") if kind == "ChannelDestroyed" else None)
        if role == "supervisor":
            self.supervisor_left(ctx, channel_id)

    def answered(self, ctx, channel_id, args):
        mode = args[2] if len(args) > 2 else None
        supervisor_id = args[3] if len(args) > 3 else None
        row = ctx.row
        if mode not in MODES or row is None or row.state != "bridged" or not row.bridge_id:
            log.info("call %s: supervisor answered, but the call is no longer bridged",
                     ctx.call_id)
            hang_up(self.ari, channel_id)
            return
        try:
            if mode in SNOOP:
                self.listen(ctx, row, channel_id, mode)
            else:
                self.ari.bridge_add_channel(row.bridge_id, channel_id)
        except AriError as exc:
            log.warning("call %s: supervisor cannot %s: %s", ctx.call_id, mode, exc)
            self.supervisor_left(ctx, channel_id)
            hang_up(self.ari, channel_id)
            return
        call_store.note(ctx.call_id, "call.supervision_started", mode=mode,
                        supervisor_id=supervisor_id, channel=channel_id)
        if mode == "take_call":
            self.take_over(ctx, row, channel_id, supervisor_id)

    def listen(self, ctx, row, channel_id, mode):
        """Snoop on the agent's channel into a bridge with the supervisor (spy, whisper)."""
        attempt = _attempt(channel_id)
        snoop, bridge = snoop_channel(ctx.call_id, attempt), spy_bridge(ctx.call_id, attempt)
        call_store.add_legs(ctx.call_id, (snoop, "snoop"), (bridge, "supervisor", "bridge"))
        self.ari.request("POST", f"/channels/{row.agent_channel_id}/snoop",
                         {"app": self.ari.app, "appArgs": f"snoop,{ctx.call_id}",
                          "snoopId": snoop, **SNOOP[mode]})
        self.ari.bridge_create(bridge, type="mixing")
        self.ari.bridge_add_channel(bridge, [snoop, channel_id])

    def take_over(self, ctx, row, channel_id, supervisor_id):
        agent_leg = row.agent_channel_id
        # The agent's leg now leaves without ending the call: its events come here.
        ctx.scratch.setdefault("side_legs", {})[agent_leg] = self.kind
        agent_id = call_store.take_over(ctx.call_id, channel_id, supervisor_id)
        if agent_id is None:  # ended meanwhile
            return
        try:
            self.ari.bridge_remove_channel(row.bridge_id, agent_leg)
        except AriError:
            pass  # hung up just below anyway
        hang_up(self.ari, agent_leg)
        self.engine.presence.mirror(agent_id)

    def supervisor_left(self, ctx, channel_id):
        """The supervisor hung up: its snoop and bridge go; a call it took over ends."""
        attempt = _attempt(channel_id)
        teardown_legs(self.ari, [(snoop_channel(ctx.call_id, attempt), "snoop", "channel"),
                                 (spy_bridge(ctx.call_id, attempt), "supervisor", "bridge")])
        for asterisk_id, resource in ((snoop_channel(ctx.call_id, attempt), "channel"),
                                      (spy_bridge(ctx.call_id, attempt), "bridge")):
            call_store.leg_gone(asterisk_id, resource=resource)
        row = ctx.reload()
        if row is not None and row.state == "bridged" and row.agent_channel_id == channel_id:
            self.end(ctx, "ended", reasons.AGENT_HANGUP, gone=channel_id)
