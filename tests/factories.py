"""Builders for test data, so each test states only what matters to it."""
import itertools

from oml_server.auth import issue_token
from oml_server.extensions import db
from oml_server.models import (AgentExternalId, Campaign, Contact, ContactDatabase,
                               DispositionOption, ExternalSystem, Pause)
from oml_server.services import users

PASSWORD = "s3cret-pass"
_seq = itertools.count(1)


class Factory:
    def __init__(self, app):
        self.app = app

    def user(self, role="Agente", username=None, password=PASSWORD, **kwargs):
        username = username or f"{role.lower()}{next(_seq)}"
        user = users.create_user(username, password, role, **kwargs)
        db.session.commit()
        return user

    def agent(self, **kwargs):
        return self.user("Agente", **kwargs)

    def token(self, user):
        with self.app.test_request_context():
            return issue_token(user)[0]

    def headers(self, user, lang=None):
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        if lang:
            headers["Accept-Language"] = lang
        return headers

    def external_system(self, name=None):
        system = ExternalSystem(name=name or f"crm{next(_seq)}")
        db.session.add(system)
        db.session.commit()
        return system

    def link_agent(self, user, system, external_agent_id):
        db.session.add(AgentExternalId(agent_id=user.agent.id, external_system_id=system.id,
                                       external_agent_id=external_agent_id))
        db.session.commit()

    def contact_database(self, columns=("TELEFONO", "NOMBRE", "FECHA", "HORA", "id_ext"),
                         main_phone="TELEFONO", other_phones=(), external_id="id_ext", name=None):
        database = ContactDatabase(name=name or f"db{next(_seq)}", columns=list(columns),
                                   main_phone=main_phone, other_phones=list(other_phones),
                                   external_id_column=external_id)
        db.session.add(database)
        db.session.commit()
        return database

    def campaign(self, agents=(), supervisors=(), database=None, type="manual", state="active",
                 external_system=None, external_id=None, allow_duplicate_phones=True, name=None,
                 options=()):
        database = database or self.contact_database()
        campaign = Campaign(name=name or f"campaign{next(_seq)}", type=type, state=state,
                            database=database, external_system=external_system,
                            external_id=external_id, allow_duplicate_phones=allow_duplicate_phones)
        campaign.agents = [u.agent for u in agents]
        campaign.supervisors = list(supervisors)
        db.session.add(campaign)
        db.session.flush()
        for option in options:
            self.option(campaign, **option) if isinstance(option, dict) else self.option(campaign, option)
        db.session.commit()
        return campaign

    def option(self, campaign, name=None, type="no_action", hidden=False, crm_interaction=False):
        option = DispositionOption(campaign_id=campaign.id, name=name or f"option{next(_seq)}",
                                   type=type, hidden=hidden, crm_interaction=crm_interaction)
        db.session.add(option)
        db.session.commit()
        return option

    def contact(self, database, phone="3511111111", external_id=None, assigned_agent=None, **data):
        values = {column: "" for column in database.columns}
        if database.external_id_column:
            values[database.external_id_column] = external_id
        values[database.main_phone] = phone
        values.update(data)
        contact = Contact(database_id=database.id, main_phone=phone, external_id=external_id,
                          data=values, assigned_agent_id=assigned_agent.agent.id if assigned_agent else None)
        db.session.add(contact)
        db.session.commit()
        return contact

    def pause(self, name=None, type="recreational"):
        pause = Pause(name=name or f"pause{next(_seq)}", type=type)
        db.session.add(pause)
        db.session.commit()
        return pause
