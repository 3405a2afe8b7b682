"""In-call commands over REST (contract-calls §0, §2, §3): hold, blind transfers, hangup-leg.

The checks happen here, at once ([better]: OMniLeads publishes and answers 202 without
looking): a missing field is OMniLeads' 400 text; an unknown or ended call, an unknown target,
404; someone with no business with the call, 403 `{"detail": …}`. What is left is handed to the
engine that runs the call (`telephony.call_command`) and answered 202 in OMniLeads' shape;
what happens afterwards is on the call's record (`call.transfer_*`, `call.held`… events).
"""
from sqlalchemy import select

from .. import messages as M
from ..errors import ContractError, forbidden
from ..extensions import db
from ..models import FINAL_CALL_STATES, AgentProfile, Call, CallLeg
from . import agent_pick, call_control_state, calls, lookup, telephony
from .contacts import PHONE_RE

SUPERVISING_ROLES = calls.SUPERVISING_ROLES


def error(status, message, **extra):
    """OMniLeads' error body: `{"error": <text>}` (plus extra keys)."""
    return ContractError(status, {"error": message, **extra})


def _text(data, *names):
    """The first of `names` sent, as text ("" when none)."""
    for name in names:
        value = data.get(name)
        if value is not None and not isinstance(value, (dict, list, bool)) and str(value).strip():
            return str(value).strip()
    return ""


def _require(data, *names):
    missing = [n for n in names if not _text(data, *(("call_id", "callid") if n == "call_id"
                                                     else (n,)))]
    if missing:
        raise error(400, M.MISSING_PARAMETERS % ", ".join(names) if len(names) > 1
                    else M.OML_MISSING_PARAMETER % names[0])


# -- the call and who may act on it ---------------------------------------------------------

def live_call(call_id):
    call = db.session.get(Call, call_id) if 0 < len(call_id) <= 32 else None
    if call is None or call.state in FINAL_CALL_STATES:
        raise error(404, M.CALL_NOT_LIVE)
    return call


def check_may_act(user, call):
    """The agent the call is with, or a supervisor of its campaign (Administrador and Gerente
    everywhere); anyone else is refused."""
    agent_id = lookup.agent_id_of(user) if user.role == "Agente" else None
    if agent_id is not None and agent_id == call.active_agent_id:
        return
    if user.role in ("Administrador", "Gerente"):
        return
    if user.role in SUPERVISING_ROLES and call.campaign_id is not None:
        campaign = lookup.campaign_by_id(call.campaign_id, active_only=False)
        if campaign is not None and lookup.has_campaign_access(user, campaign):
            return
    raise forbidden(M.NO_PERMISSION)


def _connected(call):
    if call.state != "bridged":
        raise error(400, M.CALL_NOT_CONNECTED)


def acting_on(user, data):
    """The bridged call `call_id` (or `callid`) names, when `user` may act on it."""
    call = live_call(_text(data, "call_id", "callid"))
    check_may_act(user, call)
    _connected(call)
    return call


def queued(call, subscribers, message=True, **extra):
    """OMniLeads' 202 body for a command it took (contract-calls §0)."""
    body = {"status": "queued"}
    if message:
        body["message"] = "Comando recibido"
    body.update(subscribers=subscribers, channel=f"acd:commands:{call.node}",
                node_id=call.node, **extra)
    return body


def _send(call, command, **args):
    return telephony.call_command(call, command, args)


# -- transfers ------------------------------------------------------------------------------

def _target_agent(raw, call):
    agent = lookup.agent_by_id(raw)
    if agent is None:
        raise error(404, M.TARGET_AGENT_UNKNOWN)
    if agent.id == call.active_agent_id:
        raise error(400, M.TARGET_IS_CURRENT)
    return agent


def blind_agent(user, data):
    _require(data, "call_id", "target_agent_id")
    call = acting_on(user, data)
    agent = _target_agent(_text(data, "target_agent_id"), call)
    return queued(call, _send(call, "transfer", mode="agent", target_agent_id=agent.id,
                              by_user_id=user.id), target_agent_id=agent.id)


def blind_endpoint(user, data):
    """An agent's extension (then as blind-agent) or an outside number; never a dial string."""
    _require(data, "call_id", "endpoint")
    call = acting_on(user, data)
    endpoint = _text(data, "endpoint")
    args = _endpoint_target(endpoint, call)
    return queued(call, _send(call, "transfer", by_user_id=user.id, **args), endpoint=endpoint)


def _endpoint_target(endpoint, call):
    """An agent's extension is that agent; else a phone number; never a dial string."""
    agent = db.session.scalar(select(AgentProfile).where(AgentProfile.sip_extension == endpoint))
    if agent is not None:
        if agent.id == call.active_agent_id:
            raise error(400, M.TARGET_IS_CURRENT)
        return {"mode": "agent", "target_agent_id": agent.id}
    if PHONE_RE.match(endpoint):
        return {"mode": "endpoint", "endpoint": endpoint}
    raise error(400, M.INVALID_ENDPOINT)


def blind_campaign(user, data):
    _require(data, "call_id", "target_campaign_id")
    call = acting_on(user, data)
    campaign = lookup.campaign_by_id(lookup.parse_id(_text(data, "target_campaign_id")))
    if campaign is None:
        raise error(404, M.CAMPAIGN_NOT_FOUND)
    return queued(call, _send(call, "transfer", mode="campaign", campaign_id=campaign.id,
                              by_user_id=user.id), message=False,
                  target_campaign_id=campaign.id)


def blind_campaign_agent(user, data):
    """The campaign's available agent its strategy picks (not the caller), then as
    blind-agent; if that agent is gone by the time it is rung, the campaign's next one."""
    if not _text(data, "call_id", "callid"):
        raise error(400, M.OML_MISSING_PARAMETER % "call_id")
    raw_campaign = _text(data, "campaign_id")
    if not raw_campaign:
        raise error(400, "campaign_id es requerido.")
    call = acting_on(user, data)
    campaign = lookup.campaign_by_id(lookup.parse_id(raw_campaign))
    if campaign is None:
        raise error(404, M.CAMPAIGN_NOT_FOUND)
    picked = [a for a in agent_pick.available_agents(campaign.id) if a != call.active_agent_id]
    if not picked:
        raise error(404, f"No hay agentes READY disponibles en la campaña {raw_campaign}",
                    campaign_id=raw_campaign)
    return queued(call, _send(call, "transfer", mode="agent", target_agent_id=picked[0],
                              campaign_id=campaign.id, by_user_id=user.id),
                  target_agent_id=picked[0], campaign_id=campaign.id)


# -- hold and hangup-leg --------------------------------------------------------------------

def hold(user, data):
    """Toggle (OMniLeads), or `action` hold / unhold [extension]; the 202 says which."""
    raw_id = _text(data, "call_id", "callid")
    if raw_id:
        call = live_call(raw_id)
    else:
        agent_id = lookup.agent_id_of(user) if user.role == "Agente" else None
        call = agent_id is not None and db.session.scalar(
            select(Call).where(Call.active_agent_id == agent_id))
        if not call:
            raise error(400, "Falta callid o call_id, o el agente no tiene llamada activa")
    check_may_act(user, call)
    _connected(call)
    action = _text(data, "action")
    if action and action not in ("hold", "unhold"):
        raise error(400, M.INVALID_HOLD_ACTION)
    if not action:
        action = "unhold" if call_control_state.is_held(call.id) else "hold"
    return queued(call, _send(call, action), action=action, call_id=call.id)


def hangup_leg(user, data):
    """A call id: the whole call (as hangupCall); a channel id: that leg of its call."""
    call_id = _text(data, "call_id", "callid")
    leg = _text(data, "channel_id", "asterisk_id", "unique_id")
    if not call_id and not leg:
        raise error(400, M.OML_MISSING_PARAMETER % "call_id")
    if call_id:
        call = live_call(call_id)
        check_may_act(user, call)
        telephony.hangup_call(call)
        db.session.commit()
        return queued(call, 1, target_id=call.id, mode="auto")
    row = db.session.execute(select(CallLeg.call_id).where(
        CallLeg.asterisk_id == leg, CallLeg.resource == "channel",
        CallLeg.state == "live")).first() if len(leg) <= 128 else None
    if row is None:
        raise error(404, M.LEG_NOT_LIVE)
    call = live_call(row.call_id)
    check_may_act(user, call)
    return queued(call, _send(call, "hangup_leg", leg=leg), target_id=leg, mode="auto")


# -- consultative transfer ------------------------------------------------------------------

def _consult_call(user, data):
    if not _text(data, "call_id", "callid"):
        raise error(400, M.OML_MISSING_PARAMETER % "call_id")
    return acting_on(user, data)


def consult_start(user, data):
    """`target_agent_id` (an agent) or `endpoint` (an agent's extension or a number)."""
    call = _consult_call(user, data)
    if not _text(data, "target_agent_id") and not _text(data, "endpoint"):
        raise error(400, "Debe proporcionar endpoint o target_agent_id")
    if call_control_state.consult_state(call.id)[0] is not None:
        raise error(400, M.CONSULT_UNDER_WAY)
    if _text(data, "target_agent_id"):
        args = {"target_agent_id": _target_agent(_text(data, "target_agent_id"), call).id}
    else:
        args = _endpoint_target(_text(data, "endpoint"), call)
        if args.get("mode") == "agent":
            args = {"target_agent_id": args["target_agent_id"]}
        else:
            args = {"endpoint": args["endpoint"]}
    return queued(call, _send(call, "consult_start", by_user_id=user.id, **args), **args)


def consult_complete(user, data):
    call = _consult_call(user, data)
    state = call_control_state.consult_state(call.id)[0]
    if state is None:
        raise error(400, M.NO_CONSULT)
    if state != "answered":
        raise error(400, M.CONSULT_NOT_ANSWERED)
    return queued(call, _send(call, "consult_complete", by_user_id=user.id))


def consult_cancel(user, data):
    call = _consult_call(user, data)
    if call_control_state.consult_state(call.id)[0] is None:
        raise error(400, M.NO_CONSULT)
    return queued(call, _send(call, "consult_cancel", by_user_id=user.id))


# -- three-way ------------------------------------------------------------------------------

def three_way(user, data):
    """Adds `endpoint` (an agent's extension or a number) to the call [better: OMniLeads
    accepts it and does nothing]."""
    _require(data, "call_id", "endpoint")
    call = acting_on(user, data)
    endpoint = _text(data, "endpoint")
    args = _endpoint_target(endpoint, call)
    args.pop("mode")
    return queued(call, _send(call, "three_way", by_user_id=user.id, **args), message=False,
                  endpoint=endpoint)
