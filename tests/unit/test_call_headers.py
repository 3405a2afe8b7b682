"""The call's data on the agent's INVITE (contract-calls §1): OMniLeads 3 and 2.6.3 names."""
from datetime import datetime, timezone
from types import SimpleNamespace

from ari_engine.call_headers import agent_leg_variables
from oml_server.extensions import db


def headers(variables):
    return {k[len("PJSIP_HEADER(add,"):-1]: v for k, v in variables.items()}


def test_a_recorded_campaign_names_the_recording_to_come(app, make):
    campaign = make.campaign(type="inbound")
    call = SimpleNamespace(id="c" * 32, kind="inbound", campaign_id=campaign.id, contact_id=7,
                           number="3515550000",
                           created_at=datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
    plain = headers(agent_leg_variables(call, 5, wait_seconds=3.7))
    assert plain["X-OML-CallID"] == plain["Omlcallid"] == call.id
    assert (plain["X-OML-CallType"], plain["Omlcamptype"], plain["Omlcallwaitduration"]) == \
        ("inbound", "1", "3")
    assert "Omlrecfilename" not in plain  # not recorded: no name
    campaign.record = True
    db.session.commit()
    recorded = headers(agent_leg_variables(call, 5, origin="transfer"))
    assert recorded["Omlrecfilename"] == f"2026-11-30/{call.id}.wav"
    assert (recorded["X-OML-Origin"], recorded["X-OML-CallType"]) == ("transfer", "transfer")


def test_the_crm_gets_the_recordings_name_as_rec_filename(app, make):
    """A Servidor site's `call` parameter rec_filename: the same name as Omlrecfilename."""
    from oml_server.services.crm_request import parameters
    campaign = make.campaign(type="inbound")
    campaign.crm_parameters = [{"name": "rec", "type": "call", "value": "rec_filename"}]
    db.session.commit()
    call = SimpleNamespace(id="d" * 32, kind="inbound", campaign_id=campaign.id, contact_id=None,
                           agent_id=None, number="1", recording_file=None,
                           agent_answered_at=None, bridged_at=None,
                           created_at=datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
    assert parameters(campaign, call)[0] == {"rec": ""}  # not recorded
    campaign.record = True
    db.session.commit()
    assert parameters(campaign, call)[0] == {"rec": f"2026-11-30/{call.id}.wav"}
