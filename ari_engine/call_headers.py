"""The call's data as SIP headers on every INVITE to an agent's phone (contract-calls §1).

A WebPhone, a voicebot or a softphone script reads them to know what it is answering: the
OMniLeads 3 names (`X-OML-…`) and the OMniLeads 2.6.3 names, both sent (`Omlrecfilename`
only when the campaign records). They travel as ARI
originate `variables` (`PJSIP_HEADER(add,<name>)`), so they cost nothing but the request body.
"""
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import Campaign

# OMniLeads' numeric campaign types (Campana.TYPE_*), for Omlcamptype / Omlcalltypeidtype.
CAMPAIGN_TYPE_IDS = {"inbound": "1", "dialer": "2", "manual": "3", "preview": "4"}
# X-OML-CallType of a call by the engine's kind (a campaign's type refines click-to-call).
_CALL_TYPES = {"inbound": "inbound", "outbound": "manual", "click_to_call": "manual"}


def call_type(kind, campaign_type=None):
    if kind == "click_to_call" and campaign_type in ("preview", "dialer"):
        return campaign_type
    return _CALL_TYPES.get(kind, kind or "")


def agent_leg_variables(call, agent_id, origin=None, wait_seconds=None, campaign_type=None,
                        recorded=None):
    """ARI originate variables putting the call's headers on an agent leg's INVITE. `call` is a
    call row or object (id, kind, campaign_id, contact_id, number); `origin` "transfer" on a
    transferred leg (also its X-OML-CallType). The campaign's type and recording flag are read
    unless both are given."""
    if call.campaign_id is not None and (campaign_type is None or recorded is None):
        found = db.session.execute(select(Campaign.type, Campaign.record)
                                   .where(Campaign.id == call.campaign_id)).first()
        if found is not None:
            campaign_type = campaign_type or found.type
            recorded = bool(found.record)
    kind = "transfer" if origin == "transfer" else call_type(call.kind, campaign_type)
    campaign = "" if call.campaign_id is None else str(call.campaign_id)
    contact = "" if call.contact_id is None else str(call.contact_id)
    agent = "" if agent_id is None else str(agent_id)
    headers = {
        "X-OML-CallID": call.id, "X-OML-CampID": campaign, "X-OML-CustomerID": contact,
        "X-OML-PhoneNumber": call.number or "", "X-OML-CallType": kind,
        "X-OML-AgentID": agent,
        "Omlcallid": call.id, "Idcamp": campaign, "Idcliente": contact,
        "Omloutnum": call.number or "", "Omlcamptype": CAMPAIGN_TYPE_IDS.get(campaign_type, ""),
        "Omlcalltypeidtype": CAMPAIGN_TYPE_IDS.get(campaign_type, ""),
        "Omlcallwaitduration": str(int(wait_seconds or 0)),
    }
    if origin:
        headers["X-OML-Origin"] = origin
    for name, value in (getattr(call, "crm_variables", None) or {}).items():
        if name.upper().startswith("OMLCRM"):   # contract-calls §1: OMLCRMX travels as Omlcrmx
            headers[name.capitalize()] = str(value)
    if recorded and getattr(call, "created_at", None) is not None:
        # The name the recording will have (ari_engine/recording.py names it so at bridged).
        from oml_server.services.recordings import file_name
        headers["Omlrecfilename"] = file_name(call.id, call.created_at)
    # Asterisk adds no header whose value is empty; "-" would be a lie, so empty ones go.
    return {f"PJSIP_HEADER(add,{name})": value for name, value in headers.items() if value != ""}
