"""Brings the rows and Asterisk back in line: after every (re)connect and every
ENGINE_SWEEP_SECONDS.

Events get lost (the websocket was down, Asterisk restarted, a process died between a commit
and an originate), so the database may say a call is live whose channels are gone, and
Asterisk may hold channels or bridges of ours that no live call owns. The sweep:

* ends live calls all of whose channels are gone (asterisk_lost), and `requested` calls that
  never got a channel within the agent answer timeout (setup_lost);
* for a live call that lost some of its channels, hands the call's flow a ChannelDestroyed for
  each, so the flow decides as it would have had the event arrived (the other legs hung up,
  the right reason, the next agent for an inbound call that was ringing one);
* hangs up channels and destroys bridges that belong to a call that is not live (ours by id,
  or Asterisk-named ones found in `call_legs`), never a channel handed back to the dialplan.

Legs and channels younger than SWEEP_GRACE_SECONDS are left alone: a leg is recorded before
its originate, and a channel may exist before its call's row is read.
"""
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import FINAL_CALL_STATES, Call, CallLeg

from . import call_store, ids, reasons
from .cleanup import destroy_bridge, hang_up
from .flow import teardown_legs

log = logging.getLogger(__name__)

_calls, _legs = Call.__table__, CallLeg.__table__
CHUNK = 500


def _aware(moment):
    if moment is not None and moment.tzinfo is None:  # SQLite gives naive UTC datetimes
        return moment.replace(tzinfo=timezone.utc)
    return moment


def _created(channel):
    try:
        return datetime.strptime(channel["creationtime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    except (KeyError, TypeError, ValueError):
        return None


def _started(startup_time):
    try:
        return datetime.strptime(startup_time, "%Y-%m-%dT%H:%M:%S.%f%z")
    except (TypeError, ValueError):
        return None


def sweep(ari, dispatcher, settings, asterisk_started=None):
    """One pass; returns a summary dict (for logs and tests). `asterisk_started` (ARI's
    startup_time): a leg recorded before it cannot be in this Asterisk, however young."""
    node = call_store.node()
    now = call_store.now()
    cutoff = now - timedelta(seconds=settings.get("SWEEP_GRACE_SECONDS", 5))
    started = _started(asterisk_started)
    if started is not None and started > cutoff:
        cutoff = min(started, now)
    setup_cutoff = cutoff - timedelta(seconds=settings.get("AGENT_ANSWER_TIMEOUT", 25))
    # Rows first, then Asterisk: a leg recorded after this read is not judged now.
    live = db.session.execute(select(_calls.c.id, _calls.c.state, _calls.c.created_at).where(
        _calls.c.node == node, _calls.c.state.not_in(FINAL_CALL_STATES))).all()
    legs = {}
    for chunk in _chunks([c.id for c in live]):
        for leg in db.session.execute(select(
                _legs.c.call_id, _legs.c.asterisk_id, _legs.c.role, _legs.c.resource,
                _legs.c.created_at).where(_legs.c.call_id.in_(chunk), _legs.c.state == "live")):
            legs.setdefault(leg.call_id, []).append(leg)
    call_store.release()
    channels = {c["id"]: c for c in ari.channels()}
    bridges = {b["id"] for b in ari.bridges()}
    summary = {"calls_ended": 0, "legs_lost": 0, "channels_hung_up": 0, "bridges_destroyed": 0}

    for call in live:
        call_legs = legs.get(call.id, [])
        channel_legs = [leg for leg in call_legs if leg.resource == "channel"]
        if not channel_legs:
            if call.state == "requested" and _aware(call.created_at) < setup_cutoff:
                call_store.finish(call.id, "failed", reasons.SETUP_LOST)
                summary["calls_ended"] += 1
            continue
        gone = [leg for leg in channel_legs
                if leg.asterisk_id not in channels and _aware(leg.created_at) < cutoff]
        if not gone:
            continue
        if len(gone) == len(channel_legs):  # nothing of it is left in Asterisk
            call_store.finish(call.id, "ended" if call.state == "bridged" else "failed",
                              reasons.ASTERISK_LOST)
            teardown_legs(ari, [(leg.asterisk_id, leg.role, leg.resource) for leg in call_legs
                                if leg.resource == "bridge"])
            summary["calls_ended"] += 1
            continue
        for leg in gone:
            if dispatcher is not None:
                dispatcher.adopt(leg.asterisk_id, call.id)
                dispatcher.enqueue(call.id, {"type": "ChannelDestroyed", "oml_swept": True,
                                             "channel": {"id": leg.asterisk_id}})
            summary["legs_lost"] += 1

    summary["channels_hung_up"] = _hang_up_orphans(ari, channels, cutoff)
    summary["bridges_destroyed"] = _destroy_orphans(ari, bridges)
    if any(summary.values()):
        log.info("sweep: %s", summary)
    return summary


def _owner_states(call_ids):
    states = {}
    for chunk in _chunks(sorted(call_ids)):
        states.update(db.session.execute(select(_calls.c.id, _calls.c.state)
                                          .where(_calls.c.id.in_(chunk))).all())
    return states


def _hang_up_orphans(ari, channels, cutoff):
    """Channels of calls that are not live (read now, after the listing)."""
    owner = {cid: ids.call_id_of(cid) for cid in channels if ids.is_ours(cid)}
    named = [cid for cid in channels if cid not in owner]
    for chunk in _chunks(named):
        for leg in db.session.execute(select(_legs.c.asterisk_id, _legs.c.call_id).where(
                _legs.c.node == call_store.node(), _legs.c.resource == "channel",
                _legs.c.asterisk_id.in_(chunk), _legs.c.state != "released")):
            owner[leg.asterisk_id] = leg.call_id
    states = _owner_states(set(owner.values()))
    hung = 0
    for channel_id, call_id in owner.items():
        state = states.get(call_id)
        if state is not None and state not in FINAL_CALL_STATES:
            continue
        created = _created(channels[channel_id])
        if created is not None and created > cutoff:
            continue
        hang_up(ari, channel_id)
        hung += 1
    call_store.release()
    return hung


# Bridges Asterisk lists but refused to destroy (409 "Bridge not in Stasis application": no
# application owns them any more, call_bridges tells how one got so): tried once, not on every
# sweep. Forgotten once Asterisk stops listing them (its restart).
_refused = set()


def _destroy_orphans(ari, bridges):
    _refused.intersection_update(bridges)
    owner = {bid: ids.call_id_of(bid) for bid in bridges
             if ids.is_ours(bid) and bid not in _refused}
    states = _owner_states(set(owner.values()))
    destroyed = 0
    for bridge_id, call_id in owner.items():
        state = states.get(call_id)
        if state is None or state in FINAL_CALL_STATES:
            refused = destroy_bridge(ari, bridge_id)
            if refused is None:
                destroyed += 1
            elif refused.status == 409:
                _refused.add(bridge_id)
                log.warning("sweep: bridge %s is left to Asterisk (it goes when Asterisk "
                            "restarts); not tried again", bridge_id)
    call_store.release()
    return destroyed


def _chunks(items):
    items = list(items)
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]
