"""What every call flow shares: the call's context between events, and ending a call.

A flow (click-to-call, inbound, outbound…) is a small state machine over one call: the
dispatcher hands it the call's events one at a time, in order, through `handle(ctx, event)`.
Everything a flow decides on is in the database (the call row and its legs); `CallContext` is
only a cache of it plus scratch notes (hang-up causes, dial status), so a context lost with a
worker that idled out, or with a restarted engine, is rebuilt from the rows on the next event.
"""
import logging

from oml_server.models import FINAL_CALL_STATES

from . import call_store, ids, reasons
from .cleanup import destroy_bridge, hang_up

log = logging.getLogger(__name__)


class CallContext:
    """One live call as the engine sees it between events."""

    def __init__(self, call_id):
        self.call_id = call_id
        self.kind = None          # the flow's kind, once known
        self.roles = None         # Asterisk-named channel id -> role, loaded on demand
        self.scratch = {}         # causes, dial status, ringback… (lost on restart: harmless)
        self.final = False        # the call ended (its agent was told to Asterisk)
        self.torn_down = False    # its legs and bridges were asked to go
        self.node_checked = False  # the row was seen to be this engine's node's (or absent)
        self.foreign = False      # another node's call: its events are not this engine's
        self._row = None

    def begin_event(self):
        self._row = None

    @property
    def row(self):
        """The call's row as of this event (one SELECT, at most once per event); None when
        the call does not exist."""
        if self._row is None:
            self._row = call_store.row(self.call_id)   # committed alone
            call_store.release()  # flows call ARI next: no connection held meanwhile
        return self._row

    def reload(self):
        self._row = None
        return self.row

    def role(self, channel_id):
        """The role of one of this call's channels, or None when it is not one of them."""
        role = ids.role_of(channel_id)
        if role is not None and ids.call_id_of(channel_id) == self.call_id:
            return role
        if self.roles is None or channel_id not in self.roles:
            self.roles = {a: r for a, r, res in call_store.legs_of(self.call_id, live_only=False)
                          if res == "channel"}
        return self.roles.get(channel_id)

    def adopt(self, channel_id, role):
        if self.roles is None:
            self.roles = {}
        self.roles[channel_id] = role


def channel_of(event):
    return (event.get("channel") or event.get("peer") or {}).get("id")


class Flow:
    """Base of the call flows: the engine's ARI client and settings, and how a call ends."""
    kind = None
    events = frozenset()

    def __init__(self, engine):
        self.engine = engine
        self.ari = engine.ari
        self.settings = engine.settings

    def is_over(self, ctx):
        """True (after tearing down what is left, again: a leg may have come up after the
        first teardown) when the call already ended, e.g. through hangupCall or the sweep while
        this event was on its way."""
        row = ctx.row
        if row is not None and row.state not in FINAL_CALL_STATES:
            return False
        self.teardown(ctx, legs=call_store.legs_to_clear(ctx.call_id), again=True)
        self.call_over(ctx)
        return True

    def end(self, ctx, final, reason, cause=None, gone=None):
        """End the call with its reason, then hang up every leg but `gone` (already gone) and
        destroy its bridges. False when someone else ended it first (it is torn down anyway)."""
        ended = call_store.finish(ctx.call_id, final, reason, hangup_cause=cause, gone=gone)
        self.teardown(ctx, skip=gone, legs=ended.legs if ended else [])
        self.call_over(ctx, agent_id=ended.agent_id if ended else None,
                       freed=ended.freed if ended else None)
        return ended

    def teardown(self, ctx, skip=None, legs=None, again=False):
        """Hang up the call's channels and destroy its bridges (404 counts as done); once,
        unless `again`."""
        if ctx.torn_down and not again:
            return
        ctx.torn_down = True
        self.stop_ringback(ctx)
        teardown_legs(self.ari, legs if legs is not None else call_store.legs_of(ctx.call_id),
                      skip=skip)

    def call_over(self, ctx, agent_id=None, freed=None):
        """Once per call: tell Asterisk its agent is free again (`freed`: the agent's session
        as the call's end left it, when that statement returned it)."""
        if ctx.final:
            return
        ctx.final = True
        if agent_id is None:
            fate = call_store.fate(ctx.call_id)   # committed alone
            agent_id = fate.agent_id if fate is not None else None
        if agent_id is not None:
            self.engine.presence.mirror(agent_id, freed)

    def stop_ringback(self, ctx):
        playback_id = ctx.scratch.pop("ringback", None)
        if playback_id:
            from .ari_client import AriError
            try:
                self.ari.request("DELETE", f"/playbacks/{playback_id}")
            except AriError:
                pass  # already finished or gone with the bridge

    def note(self, ctx, event):
        """Remember why a channel goes (its cause; Asterisk shutting down)."""
        reasons.note_hangup(ctx.scratch, channel_of(event), event)


def teardown_legs(ari, legs, skip=None):
    """Hang up every channel of `legs` ((id, role, resource) rows) but `skip`, then destroy the
    bridges: the one place that tears a call down (flows, hangupCall, the sweep)."""
    for asterisk_id, _role, resource in legs:
        if resource == "channel" and asterisk_id != skip:
            hang_up(ari, asterisk_id)
    for asterisk_id, _role, resource in legs:
        if resource == "bridge":
            destroy_bridge(ari, asterisk_id)
