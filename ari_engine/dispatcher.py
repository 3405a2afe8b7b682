"""Routes ARI events to their call: one worker greenlet per call, one path for every event.

The websocket reader calls `dispatch`, which touches memory only and never waits: it finds
the event's call from the channel or bridge id (ours carry the call id; Asterisk-named ones
were mapped when the call adopted them), queues the event on that call's worker and returns.
Everything that needs the database or ARI runs in a worker:

* a call's events are handled in order by its own worker (`flow.handle(ctx, event)`);
* a dialplan hand-off (`StasisStart` with a kind a flow starts) gets a fresh call id here and
  its flow's `start` runs first in that call's worker;
* an event for a channel memory does not know (the worker idled out, the engine restarted) is
  looked up in `call_legs` by a short-lived greenlet, its events held in order meanwhile;
* endpoint state changes go to one presence worker, in order.

A worker ends after `idle_seconds` without events (a quiet bridged call sends none) and its
memory goes with it; the next event rebuilds it from the rows, so a worker's lifetime never
loses a call. A handler that raises is logged and the loop goes on.
"""
import logging
import re
import uuid

import gevent
from gevent.queue import Empty, JoinableQueue, Queue

from . import call_store, ids
from .flow import CallContext

log = logging.getLogger(__name__)

LINGER_SECONDS = 3.0  # a finished call's worker waits this long for trailing events
UNKNOWN_CACHE = 20000  # channel ids known to belong to no call (endpoint channels outside Stasis)

# Event types no flow reads. The event stream drops them before parsing: of the ~50 events
# Asterisk sends per click-to-call, 33 are these (23 ChannelVarset alone).
IGNORED_EVENTS = frozenset({
    "ChannelVarset", "ChannelDialplan", "ChannelCallerId", "ChannelConnectedLine",
    "ChannelStateChange", "PlaybackStarted", "PlaybackContinuing", "PlaybackFinished",
    "ChannelLeftBridge", "BridgeCreated", "BridgeDestroyed", "BridgeAttendedTransfer",
    "BridgeBlindTransfer", "BridgeMerged", "BridgeVideoSourceChanged", "ChannelTalkingStarted",
    "ChannelTalkingFinished", "ChannelDtmfReceived", "ChannelHold", "ChannelUnhold",
    "DeviceStateChanged", "RecordingStarted", "ChannelCreated",
})
# A call's recording ends after the call (its bridge is destroyed at teardown): these go to
# `on_recording` (ari_engine/recording.py), not to the call's worker, which may be gone.
RECORDING_EVENTS = frozenset({"RecordingFinished", "RecordingFailed"})
# Events worth a database look-up when memory does not know their channel.
RESOLVED_EVENTS = frozenset({"StasisStart", "StasisEnd", "ChannelHangupRequest",
                             "ChannelDestroyed", "ChannelEnteredBridge", "Dial"})
_RESOURCE_KEYS = ("channel", "peer", "caller", "bridge")
# The channels we adopt are named by Asterisk (`[<systemname>-]<epoch>.<sequence>`); a channel
# another ARI application named itself is never one of our legs, so no look-up for it (the
# endpoint subscription delivers every PJSIP channel's events, not only our app's).
_ASTERISK_NAMED = re.compile(r"\d+\.\d+$")


class Dispatcher:
    def __init__(self, app, flows, presence, idle_seconds=600, control=None):
        """`flows`: call kind -> flow. A flow with `starts` (a Stasis argument kind such as
        "inbound") and `start(ctx, event)` also begins calls the dialplan hands over.
        `control` (call_control.CallControl) sees every call event before the call's flow:
        commands and the legs of transfers are its own."""
        self.app = app
        self.flows = flows
        self.control = control
        self.starters = {f.starts: f for f in flows.values() if getattr(f, "starts", None)}
        # Flows that own some roles of any call (supervision: supervisor and snoop legs).
        self.side_flows = {role: f for f in flows.values() for role in getattr(f, "roles", ())}
        self.presence = presence
        self.idle_seconds = idle_seconds
        self.workers = {}     # call id -> Queue
        self.contexts = {}    # call id -> CallContext
        self.placed = {}      # call ids placed by this process (its node's): no node check
        self.known = {}       # Asterisk-named channel id -> call id
        self.unknown = {}     # channel ids the database knows no call of (bounded)
        self.resolving = {}   # channel id -> events held while its call is looked up
        self.stopped = False
        self._greenlets = set()
        self.on_recording = None  # RecordingFinished/Failed handler (ari_engine/recording.py)
        self._presence = Queue()
        self._presence_worker = gevent.spawn(self._presence_loop)

    # -- routing (the websocket reader: memory only) -----------------------------------------

    def dispatch(self, event):
        try:
            self._route(event)
        except Exception:
            log.exception("event %s could not be dispatched", event.get("type"))

    def _route(self, event):
        kind = event.get("type")
        if kind == "EndpointStateChange":
            self._presence.put(event)
            return
        if kind in RECORDING_EVENTS:
            if self.on_recording is not None:
                gevent.spawn(self._recording_done, event)
            return
        if kind == "ChannelUserevent":
            self._command(event)
            return
        unresolved = None
        for key in _RESOURCE_KEYS:
            resource_id = (event.get(key) or {}).get("id")
            if not resource_id:
                continue
            call_id = ids.call_id_of(resource_id) or self.known.get(resource_id)
            if call_id:
                ctx = self.contexts.get(call_id)
                if kind == "StasisStart" and ctx is not None and ctx.final and self._start(event):
                    return  # a caller the dialplan sends back into the app: a new call
                self.enqueue(call_id, event)
                return
            if unresolved is None and key != "bridge":
                unresolved = resource_id
        if kind == "StasisStart" and self._start(event):
            return
        if unresolved and kind in RESOLVED_EVENTS and unresolved not in self.unknown \
                and _ASTERISK_NAMED.search(unresolved):
            self._resolve(unresolved, event)

    def _start(self, event):
        args = event.get("args") or []
        flow = self.starters.get(args[0] if args else None)
        if flow is None:
            return False
        call_id = uuid.uuid4().hex
        self.known[event["channel"]["id"]] = call_id
        self.enqueue(call_id, dict(event, oml_start=flow.kind))
        return True

    def _command(self, event):
        """A command an API-only worker sent through Asterisk (call_control.USER_EVENT)."""
        from .call_control import COMMAND, USER_EVENT
        body = event.get("userevent") or {}
        if event.get("eventname") != USER_EVENT or not body.get("call_id"):
            return
        import json
        try:
            args = json.loads(body.get("args") or "{}")
        except ValueError:
            args = {}
        self.enqueue(body["call_id"], {"type": COMMAND, "command": body.get("command"),
                                       "params": args})

    def _resolve(self, channel_id, event):
        held = self.resolving.get(channel_id)
        if held is not None:
            held.append(event)
            return
        self.resolving[channel_id] = [event]
        gevent.spawn(self._look_up, channel_id)

    def _look_up(self, channel_id):
        call_id = None
        try:
            with self.app.app_context():
                call_id = call_store.call_of_leg(channel_id)
        except Exception:
            log.exception("cannot look up the call of channel %s", channel_id)
        # No yield from here on: events that arrive meanwhile are either held (and forwarded
        # now, in order) or routed by the mapping set here.
        held = self.resolving.pop(channel_id, [])
        if call_id is None:
            if len(self.unknown) >= UNKNOWN_CACHE:
                self.unknown.clear()
            self.unknown[channel_id] = True
            return
        self.known[channel_id] = call_id
        for event in held:
            self.enqueue(call_id, event)

    def _recording_done(self, event):
        try:
            with self.app.app_context():
                self.on_recording(event)
        except Exception:
            log.exception("recording event not recorded")

    def adopt(self, channel_id, call_id):
        """Route an Asterisk-named channel's events to `call_id` from now on."""
        self.known[channel_id] = call_id
        self.unknown.pop(channel_id, None)

    def placed_here(self, call_id):
        """makeCall in this process placed `call_id` on this engine's node: its events need no
        node check (one read fewer per call). Bounded: a call that never has an event (its
        originate failed) is forgotten with the oldest."""
        if len(self.placed) >= UNKNOWN_CACHE:
            self.placed.pop(next(iter(self.placed)))
        self.placed[call_id] = True

    def torn_down_elsewhere(self, call_id):
        """The REST side (hangupCall, same process) ended the call, is hanging up its legs and
        bridges and mirrors its agent's state: the legs' trailing events (StasisEnd,
        ChannelDestroyed…) change nothing, and are dropped without reading the row (they read
        it twice, and the agent's fate once, per call). A leg that comes up after this
        (StasisStart) still reaches the flow, which hangs it up."""
        ctx = self.contexts.get(call_id)
        if ctx is not None:
            ctx.torn_down = ctx.final = True

    # -- workers -----------------------------------------------------------------------------

    def enqueue(self, call_id, event):
        if self.stopped:
            return  # a timer firing after the engine stopped
        queue = self.workers.get(call_id)
        if queue is None:
            queue = self.workers[call_id] = JoinableQueue()  # join(): tests and benchmarks wait
            self._greenlets.add(gevent.spawn(self._work, call_id, queue))
        queue.put(event)

    def _work(self, call_id, queue):
        ctx = self.contexts[call_id] = CallContext(call_id)
        ctx.node_checked = self.placed.pop(call_id, False)
        try:
            while True:
                try:
                    event = queue.get(timeout=LINGER_SECONDS if ctx.final else self.idle_seconds)
                except Empty:
                    return
                try:
                    self._handle(ctx, event)
                finally:
                    queue.task_done()
        finally:
            self._greenlets.discard(gevent.getcurrent())
            self.workers.pop(call_id, None)
            self.contexts.pop(call_id, None)
            for channel_id in [c for c, owner in self.known.items() if owner == call_id]:
                del self.known[channel_id]
            if not queue.empty():
                # An event put while this worker's idle wait was timing out (gevent hands the
                # item over after the getter's timeout fired): a fresh worker takes it, rather
                # than it being lost with this queue (seen with commands to quiet calls).
                self.workers[call_id] = queue
                gevent.spawn(self._work, call_id, queue)

    def _handle(self, ctx, event):
        if ctx.foreign:
            return
        if ctx.final and ctx.torn_down and event.get("type") != "StasisStart":
            return  # a finished call's trailing events change nothing
        with self.app.app_context():
            try:
                ctx.begin_event()
                if not ctx.node_checked and not event.get("oml_start") and self._foreign(ctx):
                    return
                flow = self._flow(ctx, event)
                if flow is None:
                    return
                if event.get("oml_start"):
                    if not flow.start(ctx, event):
                        ctx.final = ctx.torn_down = True
                    return
                if self.control is not None and self.control.handle(ctx, event):
                    return  # a command, or a transfer's leg (call_control.py)
                if event["type"] in flow.events:
                    flow.handle(ctx, event)
            except Exception:
                log.exception("call %s: handler failed on %s", ctx.call_id, event.get("type"))
                from oml_server.extensions import db
                db.session.rollback()

    def _foreign(self, ctx):
        """Whether the call is another node's (once per context). Our channels are routed by
        their names, and an engine may see another's channel events (two engines on one
        Asterisk, as in a lab; an endpoint subscription): only the call's own node's engine
        acts on them. The row is read once for this, by the event's flow as well (cached)."""
        row = ctx.row
        if row is not None and row.node != call_store.node():
            log.info("call %s is node %s's: its events are left to that engine", ctx.call_id,
                     row.node)
            ctx.foreign = True
            return True
        ctx.node_checked = row is not None
        return False

    def _flow(self, ctx, event):
        channel_id = (event.get("channel") or {}).get("id")
        side = ctx.scratch.get("side_legs", {}).get(channel_id)  # a leg a side flow took over
        side = self.flows.get(side) if side else self.side_flows.get(ids.role_of(channel_id))
        if side is not None:
            return side
        if ctx.kind is None:
            ctx.kind = event.get("oml_start")
        if ctx.kind is None:
            args = event.get("args") or []
            hint = ids.kind_hint((event.get("channel") or event.get("peer") or {}).get("id"))
            if args and args[0] in self.flows:  # our originates name the flow in appArgs
                ctx.kind = args[0]
            elif hint is not None:
                ctx.kind = hint
            elif ctx.row is not None:
                ctx.kind = ctx.row.kind
        return self.flows.get(ctx.kind)

    # -- presence ----------------------------------------------------------------------------

    def _presence_loop(self):
        while True:
            event = self._presence.get()
            try:
                with self.app.app_context():
                    self.presence.endpoint_changed(event)
            except Exception:
                log.exception("endpoint state change not applied")
                from oml_server.extensions import db
                with self.app.app_context():
                    db.session.rollback()

    def stop(self):
        """Stop handling events: the presence worker and every call worker end now (their
        calls live on in the rows; the next engine's sweep picks them up)."""
        self.stopped = True
        gevent.killall([self._presence_worker, *self._greenlets], block=False)
