"""Writes for what happens after the bridge (issue 9): hold, transfers, legs hung up on
request. Shared by the engine (which makes them happen) and the REST layer (which reads them).

Same rules as `call_state`: each step is one short conditional transaction that also records
its legs and its outbox event, so the call's record (`GET /api/v1/calls/<id>/`, webhooks, the
event stream) can never disagree with the rows. Who the call is with is `calls.agent_id` /
`calls.active_agent_id` (unique while live): a transfer moves both to the target agent when it
is rung, so the target is "on a call" and the transferring agent free at once.
"""
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from oml_server.extensions import db
from oml_server.models import AgentSession, Event

from . import outbox
from .call_state import (_RETURNED, _add_legs, _calls, _logged, _mark_leg, _sessions,
                         _set_on_call, end_read)

_events = Event.__table__
TRANSFER_EVENTS = ("call.transfer_requested", "call.transferred", "call.transfer_failed")


def _event(type_, call_id, returned=None, **data):
    """`agent_id` in `data` names the agent the event is about; else the call's agent."""
    default_agent = returned.agent_id if returned is not None else None
    outbox.record(type_, call_id=call_id, agent_id=data.pop("agent_id", default_agent),
                  campaign_id=returned.campaign_id if returned is not None else None, **data)


def record(type_, call_id, **data):
    """An event on a live call that changes no row (held, unheld, leg hung up…)."""
    end_read()
    returned = db.session.execute(select(*_RETURNED).where(_calls.c.id == call_id)).first()
    _event(type_, call_id, returned, **data)
    db.session.commit()
    _logged(call_id, type_.split(".", 1)[1], **{k: v for k, v in data.items()
                                                 if isinstance(v, (str, int))})


def hand_over(call_id, leg_id, target_agent, from_agent, old_leg, plan):
    """A blind transfer starts: the target's leg (`leg_id`, role transfer_target) is recorded as
    the call's agent leg, the old agent leg is marked gone (it is hung up next), the target agent
    (None for an outside number) takes the call and is on it, the previous agent is free — one
    transaction, with `call.transfer_requested`. Returns "ok", "busy" (target on another call:
    nothing written) or "gone" (the call is not bridged any more)."""
    end_read()
    if target_agent is not None and not _claim_session(target_agent):
        db.session.rollback()
        return "busy"
    try:
        moved = db.session.execute(
            update(_calls).where(_calls.c.id == call_id, _calls.c.state == "bridged")
            .values(agent_id=target_agent, active_agent_id=target_agent,
                    agent_channel_id=leg_id).returning(*_RETURNED)).first()
    except IntegrityError:  # the target's own makeCall took it first (one live call each)
        db.session.rollback()
        return "busy"
    if moved is None:
        db.session.rollback()
        return "gone"
    if from_agent is not None and from_agent != target_agent:
        _set_on_call(from_agent, False)
    if old_leg:
        _mark_leg(old_leg, "gone")
    _add_legs(call_id, [(leg_id, "transfer_target")])
    _event("call.transfer_requested", call_id, moved, **dict(plan, leg=leg_id,
                                                              target_agent_id=target_agent))
    db.session.commit()
    _logged(call_id, "transfer_requested", target=target_agent, leg=leg_id)
    return "ok"


def wait_for_campaign(call_id, campaign_id, from_agent, old_leg, plan):
    """A transfer to a campaign: the call becomes the campaign's, with no agent, while its
    caller waits with music; the previous agent is free. False when the call is not bridged."""
    end_read()
    moved = db.session.execute(
        update(_calls).where(_calls.c.id == call_id, _calls.c.state == "bridged")
        .values(agent_id=None, active_agent_id=None, agent_channel_id=None,
                campaign_id=campaign_id).returning(*_RETURNED)).first()
    if moved is None:
        db.session.rollback()
        return False
    if from_agent is not None:
        _set_on_call(from_agent, False)
    if old_leg:
        _mark_leg(old_leg, "gone")
    _event("call.transfer_requested", call_id, moved, **plan)
    db.session.commit()
    _logged(call_id, "transfer_requested", campaign=campaign_id)
    return True


def answered(call_id, leg_id):
    """The transfer target answered and joined the caller."""
    end_read()
    returned = db.session.execute(
        select(*_RETURNED).where(_calls.c.id == call_id, _calls.c.agent_channel_id == leg_id,
                                 _calls.c.state == "bridged")).first()
    if returned is None:
        db.session.rollback()
        return False
    _event("call.transferred", call_id, returned, leg=leg_id)
    db.session.commit()
    _logged(call_id, "transferred", leg=leg_id)
    return True


def failed(call_id, leg_id, reason, cause=None):
    """The target did not take the call: its leg is gone and, while it is still the call's
    agent leg, the target agent is free again and the call has no agent. Returns the agent
    that was released (or None)."""
    end_read()
    _mark_leg(leg_id, "gone", cause)
    current = db.session.execute(select(_calls.c.agent_id).where(
        _calls.c.id == call_id, _calls.c.agent_channel_id == leg_id)).first()
    released = None
    if current is not None:
        released = current.agent_id
        db.session.execute(update(_calls).where(_calls.c.id == call_id)
                           .values(agent_id=None, active_agent_id=None, agent_channel_id=None))
        if released is not None:
            _set_on_call(released, False)
    returned = db.session.execute(select(*_RETURNED).where(_calls.c.id == call_id)).first()
    _event("call.transfer_failed", call_id, returned, agent_id=released, leg=leg_id,
           reason=reason, hangup_cause=cause)
    db.session.commit()
    _logged(call_id, "transfer_failed", reason=reason, cause=cause)
    return released


def last_transfer(call_id):
    """The data of the call's latest `call.transfer_requested` (the plan a transfer follows:
    who transferred, to what, its fallbacks), or None."""
    row = db.session.execute(
        select(_events.c.data).where(
            _events.c.call_id == call_id, _events.c.type == "call.transfer_requested")
        .order_by(_events.c.id.desc()).limit(1)).first()
    return dict(row.data or {}) if row is not None else None


def can_take_back(agent_id):
    """Whether a transferring agent can be offered its call back: its phone is registered, it
    is not paused and not on another call. Not "logged in" as for inbound offers: an agent
    that places calls with makeCall never logs in, and it was on this very call a moment ago."""
    session = db.session.get(AgentSession, agent_id)
    return (session is not None and session.online and not session.paused
            and not session.on_call)


def is_held(call_id):
    """Whether the latest hold event of the call is `call.held`."""
    kind = db.session.scalar(
        select(_events.c.type).where(_events.c.call_id == call_id,
                                     _events.c.type.in_(("call.held", "call.unheld")))
        .order_by(_events.c.id.desc()).limit(1))
    return kind == "call.held"


# -- consultative transfers -------------------------------------------------------------------

CONSULT_EVENTS = ("call.consult_started", "call.consult_answered", "call.consult_completed",
                  "call.consult_cancelled", "call.consult_failed")


def _claim_session(agent_id):
    return db.session.execute(
        update(_sessions).where(_sessions.c.agent_id == agent_id, _sessions.c.on_call.is_(False))
        .values(on_call=True, ringing=False, mirrored_state=None)).rowcount == 1


def party_added(call_id, leg_id, role, type_, target_agent, **data):
    """A consulted party (role `consult`, `call.consult_started`) or a third party (role
    `third_party`, `call.third_party_requested`) is about to be rung: the target agent (if
    any) is on a call from now, the leg is recorded, with the event — one transaction. "ok",
    "busy" (the target agent is on another call) or "gone" (the call is not bridged)."""
    end_read()
    if target_agent is not None and not _claim_session(target_agent):
        db.session.rollback()
        return "busy"
    returned = db.session.execute(select(*_RETURNED).where(
        _calls.c.id == call_id, _calls.c.state == "bridged")).first()
    if returned is None:
        db.session.rollback()
        return "gone"
    _add_legs(call_id, [(leg_id, role)])
    _event(type_, call_id, returned, leg=leg_id, target_agent_id=target_agent, **data)
    db.session.commit()
    _logged(call_id, type_.split(".", 1)[1], leg=leg_id, target=target_agent)
    return "ok"


def consult_state(call_id):
    """(None | "ringing" | "answered", data of the consultation's start) from the call's
    latest consult event."""
    rows = db.session.execute(
        select(_events.c.type, _events.c.data).where(
            _events.c.call_id == call_id, _events.c.type.in_(CONSULT_EVENTS))
        .order_by(_events.c.id.desc()).limit(2)).all()
    if not rows:
        return None, {}
    latest = rows[0]
    if latest.type == "call.consult_started":
        return "ringing", dict(latest.data or {})
    if latest.type == "call.consult_answered":
        started = rows[1] if len(rows) > 1 else latest
        return "answered", dict(started.data or {})
    return None, {}


def party_gone(call_id, type_, leg_id, target_agent, **data):
    """A consulted or third party's leg went (cancelled, not answered, hung up): the leg is
    gone, its agent (if one was rung) free, with `type_`."""
    end_read()
    _mark_leg(leg_id, "gone", data.get("hangup_cause"))
    if target_agent is not None:
        _set_on_call(target_agent, False)
    returned = db.session.execute(select(*_RETURNED).where(_calls.c.id == call_id)).first()
    _event(type_, call_id, returned, leg=leg_id, target_agent_id=target_agent, **data)
    db.session.commit()
    _logged(call_id, type_.split(".", 1)[1], leg=leg_id)


def take_over(call_id, leg_id, target_agent, from_agent, old_leg, type_, **data):
    """The consulted target takes the call (consult complete, or the agent hung up during the
    consultation): it becomes the call's agent leg and agent (already on a call since it was
    rung), the previous agent is free and its leg gone, with `type_`. False when the call is
    not bridged."""
    end_read()
    try:
        moved = db.session.execute(
            update(_calls).where(_calls.c.id == call_id, _calls.c.state == "bridged")
            .values(agent_id=target_agent, active_agent_id=target_agent,
                    agent_channel_id=leg_id).returning(*_RETURNED)).first()
    except IntegrityError:
        db.session.rollback()
        return False
    if moved is None:
        db.session.rollback()
        return False
    if from_agent is not None and from_agent != target_agent:
        _set_on_call(from_agent, False)
    if old_leg:
        _mark_leg(old_leg, "gone")
    _event(type_, call_id, moved, leg=leg_id, from_agent_id=from_agent, **data)
    db.session.commit()
    _logged(call_id, type_.split(".", 1)[1], leg=leg_id, target=target_agent)
    return True


# -- three-way calls --------------------------------------------------------------------------

def contact_replaced(call_id, old_leg, new_leg):
    """The caller left a three-way call: the third party is the call's other side now."""
    end_read()
    _mark_leg(old_leg, "gone")
    returned = db.session.execute(
        update(_calls).where(_calls.c.id == call_id, _calls.c.state == "bridged")
        .values(contact_channel_id=new_leg).returning(*_RETURNED)).first()
    if returned is None:
        db.session.rollback()
        return False
    _event("call.contact_left", call_id, returned, leg=old_leg, now_with=new_leg)
    db.session.commit()
    _logged(call_id, "contact_left", leg=old_leg)
    return True


def third_party_agent(call_id, leg_id):
    """The agent a third-party leg rang (from its request event), or None."""
    for (data,) in db.session.execute(
            select(_events.c.data).where(_events.c.call_id == call_id,
                                         _events.c.type == "call.third_party_requested")):
        if (data or {}).get("leg") == leg_id:
            return data.get("target_agent_id")
    return None
