"""Routes ARI events to their call, one worker greenlet per live call.

Events are matched by channel id (ours carry the call id; a dialplan caller's channel is
mapped when its call starts), never by scanning all calls, so the cost per event stays O(1).
A call's events are handled in order by its own worker; different calls run concurrently.
A handler that raises is logged and the loop goes on.
"""
import logging

import gevent
from gevent.queue import Empty, Queue

from oml_server.models import FINAL_CALL_STATES

from . import call_store, ids

log = logging.getLogger(__name__)

LINGER_SECONDS = 3.0  # a finished call's worker waits this long for trailing events

# Event types no flow reads (click_to_call lists its events; handoff and presence act on
# StasisStart/End, Dial, ChannelEnteredBridge, ChannelHangupRequest, ChannelDestroyed and
# EndpointStateChange only). The event stream drops them before parsing: of the ~50 events
# Asterisk sends per click-to-call, 33 are these (23 ChannelVarset alone).
IGNORED_EVENTS = frozenset({
    "ChannelVarset", "ChannelDialplan", "ChannelCallerId", "ChannelConnectedLine",
    "ChannelStateChange", "PlaybackStarted", "PlaybackContinuing", "PlaybackFinished",
    "ChannelLeftBridge", "BridgeCreated", "BridgeDestroyed", "BridgeAttendedTransfer",
    "BridgeBlindTransfer", "BridgeMerged", "BridgeVideoSourceChanged", "ChannelTalkingStarted",
    "ChannelTalkingFinished", "ChannelDtmfReceived", "ChannelHold", "ChannelUnhold",
    "DeviceStateChanged", "RecordingStarted", "RecordingFinished", "RecordingFailed",
})


class Dispatcher:
    def __init__(self, app, flows, presence, starters):
        """`flows`: call kind -> flow object with handle(call, event, memo).
        `starters`: Stasis argument kind ("inbound", "outbound") -> callable(event) -> call id
        for calls the dialplan hands to the app."""
        self.app = app
        self.flows = flows
        self.presence = presence
        self.starters = starters
        self.workers = {}   # call id -> Queue
        self.memos = {}     # call id -> scratch dict of the call's flow
        self.foreign = {}   # Asterisk-chosen channel id -> call id

    # -- routing ----------------------------------------------------------------------------

    def dispatch(self, event):
        kind = event.get("type")
        try:
            if kind == "EndpointStateChange":
                with self.app.app_context():
                    self.presence.endpoint_changed(event)
                return
            call_id = self.call_id_for(event)
            if call_id is None and kind == "StasisStart":
                call_id = self.start_foreign_call(event)
            if call_id is not None:
                self.enqueue(call_id, event)
        except Exception:
            log.exception("event %s could not be dispatched", kind)

    def call_id_for(self, event):
        for key in ("channel", "peer", "caller", "bridge"):
            resource = event.get(key)
            if not resource:
                continue
            resource_id = resource.get("id")
            call_id = ids.call_id_of(resource_id) or self.foreign.get(resource_id)
            if call_id:
                return call_id
        return None

    def start_foreign_call(self, event):
        args = event.get("args") or []
        starter = self.starters.get(args[0] if args else None)
        if starter is None:
            return None
        with self.app.app_context():
            call_id = starter(event)
        if call_id:
            self.foreign[event["channel"]["id"]] = call_id
        return call_id

    def adopt(self, channel_id, call_id):
        """Route a channel Asterisk named to `call_id` (a caller's, or one restored at reconcile)."""
        self.foreign[channel_id] = call_id

    def torn_down_elsewhere(self, call_id):
        """The REST side (hangupCall, same process) is hanging up the call's legs and bridge:
        its workers need not do it again when the legs' events arrive (each leg's hang-up and
        the bridge's destruction would only answer 404)."""
        memo = self.memos.get(call_id)
        if memo is not None:
            memo["torn_down"] = True

    # -- workers ----------------------------------------------------------------------------

    def enqueue(self, call_id, event):
        queue = self.workers.get(call_id)
        if queue is None:
            queue = self.workers[call_id] = Queue()
            gevent.spawn(self._work, call_id, queue)
        queue.put(event)

    def _work(self, call_id, queue):
        memo = self.memos.setdefault(call_id, {})
        try:
            while True:
                try:
                    event = queue.get(timeout=LINGER_SECONDS if memo.get("final") else 600)
                except Empty:
                    return
                self._handle(call_id, event, memo)
        finally:
            self.workers.pop(call_id, None)
            self.memos.pop(call_id, None)
            for channel_id in [c for c, owner in self.foreign.items() if owner == call_id]:
                del self.foreign[channel_id]

    def _when_final(self, call, memo):
        """`call`: the Call, or its (state, agent_id) row from call_store.fate."""
        if call is not None and call.state in FINAL_CALL_STATES and not memo.get("final"):
            memo["final"] = True
            if call.agent_id is not None:  # the agent is free again: tell Asterisk
                self.presence.mirror(call.agent_id)

    def _handle(self, call_id, event, memo):
        flow = self.flows.get(memo.get("kind"))
        wanted = getattr(flow, "events", None)
        if wanted is not None and event.get("type") not in wanted:
            return  # a flow that lists its events ignores the rest: no database round trip
        if memo.get("final") and memo.get("torn_down"):
            return  # a final call stays final: its trailing events need no row either
        light = getattr(flow, "handle_without_call", None)
        if light is not None:
            try:
                if light(call_id, event, memo):
                    return
            except Exception:
                log.exception("call %s: handler failed on %s", call_id, event.get("type"))
                return
        with self.app.app_context():
            try:
                by_id = getattr(flow, "handle_by_id", None)
                if by_id is not None and by_id(call_id, event, memo):
                    if memo.get("torn_down") and not memo.get("final"):
                        self._when_final(call_store.fate(call_id), memo)  # it failed
                    return
                call = call_store.get(call_id)
                if call is None:
                    return
                if call.is_final and memo.get("torn_down"):
                    self._when_final(call, memo)
                    return
                memo["kind"] = call.kind
                self.flows[call.kind].handle(call, event, memo)
                self._when_final(call_store.fate(call_id), memo)
            except Exception:
                log.exception("call %s: handler failed on %s", call_id, event.get("type"))
                from oml_server.extensions import db
                db.session.rollback()
