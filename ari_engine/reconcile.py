"""After every (re)connect: bring the `calls` rows and Asterisk back in line.

Events are lost while the websocket is down, so the database may say a call is live whose
channels are gone (Asterisk restarted or crashed), and Asterisk may hold channels or bridges
of ours that no live call owns (a previous engine died). Rows whose channels are gone are ended
with a reason; orphans are hung up and destroyed.
"""
import logging

from . import call_store, ids, reasons
from .cleanup import destroy_bridge, hang_up

log = logging.getLogger(__name__)


def reconcile(ari, dispatcher=None):
    """Returns a summary dict of what was done (for logs and tests)."""
    channels = {c["id"]: c for c in ari.channels()}
    bridges = {b["id"]: b for b in ari.bridges()}
    live = {call.id: call for call in call_store.live_calls()}
    ended = kept = 0
    for call in live.values():
        legs = [c for c in (call.agent_channel_id, call.contact_channel_id) if c]
        present = [c for c in legs if c in channels]
        if call.state == "requested" and not legs:
            kept += 1  # the REST side is still about to originate it
            continue
        if not present:
            was_bridged = call.state == "bridged"
            call_store.finish(call.id, "ended" if was_bridged else "failed", reasons.ASTERISK_LOST)
            destroy_bridge(ari, call.bridge_id)
            ended += 1
            continue
        if dispatcher is not None:
            for channel_id in present:
                if not ids.is_ours(channel_id):
                    dispatcher.adopt(channel_id, call.id)
        kept += 1
    owned_channels = {c for call in live.values() if not call_store.get(call.id).is_final
                      for c in (call.agent_channel_id, call.contact_channel_id) if c}
    owned_bridges = {call.bridge_id for call in live.values()
                     if call.bridge_id and not call_store.get(call.id).is_final}
    hung = destroyed = 0
    for channel_id in channels:
        if ids.is_ours(channel_id) and channel_id not in owned_channels:
            hang_up(ari, channel_id)
            hung += 1
    for bridge_id in bridges:
        if ids.is_ours(bridge_id) and bridge_id not in owned_bridges:
            destroy_bridge(ari, bridge_id)
            destroyed += 1
    summary = {"calls_ended": ended, "calls_kept": kept, "channels_hung_up": hung,
               "bridges_destroyed": destroyed}
    log.info("reconciled: %s", summary)
    return summary
