"""`oml-server provision FILE`: make the database hold what a YAML or JSON file declares.

The format is /work/shared/docs/provisioning.md (user guide: docs/provisioning-and-import.md).
Rules kept here:
- objects are matched by natural key; an `id` given is used as is, and must agree with the
  object found (primary keys never change);
- fields given are applied, fields absent keep their stored value (their default on creation);
  `active` is the exception: absent means true, as the format says;
- a password is written only on creation or when it differs (so a second run is a no-op, and
  a real change bumps token_version, cutting older tokens);
- the whole file is one transaction: the first error rolls everything back and names the
  object and the field;
- on PostgreSQL, sequences are moved past the ids inserted explicitly.
"""
import json
import os
import re

import yaml
from flask import current_app
from flask_babel import force_locale
from marshmallow import ValidationError
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from schemas.provisioning import KINDS, ProvisioningSchema

from .. import messages as M
from ..extensions import db
from ..models import (AgentExternalId, AgentProfile, Campaign, Contact, ContactDatabase,
                      DispositionOption, ExternalSystem, Pause, SupervisorProfile, User)
from . import contacts as contact_rules
from . import provisioning_crm
from . import users as user_service


class ProvisioningError(Exception):
    """The file cannot be provisioned; the message names the object and the field."""


# ---------------------------------------------------------------------------------------------
# Reading the file

class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `+5491100` as 5491100, `0351` as octal and `1:20` as 80: for phone
    numbers that is silent corruption, so only plain decimal integers become numbers."""


_PLAIN_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")


def _int_or_text(loader, node):
    value = loader.construct_scalar(node)
    return int(value) if _PLAIN_INT.match(value) else value


_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_text)


def load_file(path):
    """The file's content: JSON for `.json`, YAML for `.yaml`/`.yml`, else by its content."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            content = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisioningError(f"{path}: cannot be read: {exc}")
    ext = os.path.splitext(path)[1].lower()
    as_json = ext == ".json" or (ext not in (".yaml", ".yml") and content.lstrip().startswith("{"))
    if as_json:
        try:
            return json.loads(content)
        except json.JSONDecodeError as exc:
            raise ProvisioningError(
                f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    try:
        return yaml.load(content, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ProvisioningError(f"{path}: not valid YAML: {exc}")


def provision_file(path):
    """Provision from a YAML or JSON file; returns the ids (see `provision`)."""
    return provision(load_file(path))


def provision(data):
    """Provision from the file's content (a dict); all or nothing.

    Returns {kind: {natural key: id}} for every object created or found; contacts and
    disposition options are grouped by their database / campaign name. Messages are in the
    server's default language (there is no request to choose one).
    """
    with force_locale(current_app.config.get("BABEL_DEFAULT_LOCALE", "es")):
        return _provision(data)


def _provision(data):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProvisioningError("The file must hold a mapping with the keys "
                                + ", ".join(KINDS) + ".")
    try:
        spec = ProvisioningSchema().load(data)
    except ValidationError as exc:
        raise ProvisioningError("The file is not valid:\n" + "\n".join(
            _flatten_errors(exc.messages, data)))
    run = _Run(spec)
    try:
        ids = run.execute()
        run.advance_sequences()
        db.session.commit()
    except ProvisioningError:
        db.session.rollback()
        raise
    except IntegrityError as exc:  # a constraint the explicit checks did not foresee
        db.session.rollback()
        raise ProvisioningError(f"{run.where}: {_constraint_message(exc)}")
    except BaseException:
        db.session.rollback()
        raise
    return ids


# ---------------------------------------------------------------------------------------------
# Messages

def _item_name(item):
    if isinstance(item, dict):
        for key in ("username", "name"):
            if isinstance(item.get(key), (str, int)) and not isinstance(item.get(key), bool):
                return item[key]
    return None


def _label(kind, index, name=None):
    return f'{kind}[{index}]' + (f' "{name}"' if name not in (None, "") else "")


def _flatten_errors(messages, raw):
    """marshmallow's nested error dict as lines `users[2] "agent1": role: Must be one of: …`."""
    lines = []

    def walk(node, raw_node, parts):
        if isinstance(node, list):
            lines.append(": ".join(parts + [" ".join(str(m) for m in node)]))
            return
        for key, sub in node.items():
            if isinstance(key, int):
                item = raw_node[key] if isinstance(raw_node, list) and key < len(raw_node) else None
                head = parts[:-1] + [parts[-1] + _label("", key, _item_name(item))] if parts \
                    else [_label("", key)]
                walk(sub, item, head)
            elif key == "_schema":
                walk(sub, raw_node, parts)
            else:
                sub_raw = raw_node.get(key) if isinstance(raw_node, dict) else None
                if parts and not parts[-1].endswith('"') and not parts[-1].endswith("]"):
                    walk(sub, sub_raw, parts[:-1] + [f"{parts[-1]}.{key}"])
                else:
                    walk(sub, sub_raw, parts + [str(key)])

    walk(messages, raw, [])
    return lines


def _constraint_message(exc):
    """The database's own words for a constraint violation, on one line."""
    orig = getattr(exc, "orig", exc)
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else "violates a database constraint"


# ---------------------------------------------------------------------------------------------
# The run

class _Run:
    def __init__(self, spec):
        self.spec = spec
        self.where = "the file"           # the object being written, for unforeseen errors
        self.inserted_tables = set()
        self.ids = {"external_systems": {}, "users": {}, "agents": {}, "pauses": {},
                    "contact_databases": {}, "contacts": {}, "campaigns": {},
                    "disposition_options": {}}

    def fail(self, label, field, message):
        raise ProvisioningError(f"{label}: {field}: {message}")

    def execute(self):
        self.forbid_duplicates = self._databases_forbidding_duplicate_phones()
        for index, item in enumerate(self.spec["external_systems"]):
            self._external_system(index, item)
        for index, item in enumerate(self.spec["users"]):
            self._user(index, item)
        for index, item in enumerate(self.spec["pauses"]):
            self._pause(index, item)
        for index, item in enumerate(self.spec["contact_databases"]):
            self._contact_database(index, item)
        for kind, write, key in (("external_site_authentications", provisioning_crm.authentication, "name"),
                                 ("external_sites", provisioning_crm.site, "name"),
                                 ("webhooks", provisioning_crm.webhook, "url")):
            for index, item in enumerate(self.spec[kind]):
                write(self, _label(kind, index, item[key]), item)
        for index, item in enumerate(self.spec["campaigns"]):
            self._campaign(index, item)
        db.session.flush()
        return self.ids

    # -- helpers ------------------------------------------------------------------------------

    def _once(self, kind, key, label, field):
        """A natural key may appear once per kind in the file."""
        seen = self.__dict__.setdefault("_seen", {}).setdefault(kind, {})
        if key in seen:
            self.fail(label, field, f"{key!r} is declared twice (also {seen[key]})")
        seen[key] = label.split(" ", 1)[0]

    def _check_id(self, model, label, noun, given_id, found, describe):
        """`found` (matched by natural key) must carry the id given; a new object's id must
        be free."""
        if given_id is None:
            return
        if found is not None:
            if found.id != given_id:
                self.fail(label, "id", f"this {noun} already exists with id {found.id}, not {given_id}")
            return
        other = db.session.get(model, given_id)
        if other is not None:
            self.fail(label, "id", f"{given_id} is already the id of {noun} {describe(other)}")

    def _insert(self, obj):
        explicit_id = obj.id
        db.session.add(obj)
        db.session.flush()
        self._inserted(obj.__table__.name, explicit_id)

    @staticmethod
    def _apply(obj, item, mapping):
        """Set each attribute whose key the file gives and whose value differs."""
        for key, attr in mapping.items():
            if key in item and getattr(obj, attr) != item[key]:
                setattr(obj, attr, item[key])

    def _system_named(self, name, label, field):
        system = db.session.scalar(select(ExternalSystem).where(ExternalSystem.name == name))
        if system is None:
            self.fail(label, field, f"unknown external system {name!r}")
        return system

    def _user_named(self, username, label, field):
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            self.fail(label, field, f"unknown user {username!r}")
        return user

    def _databases_forbidding_duplicate_phones(self):
        """Names of contact databases used by a campaign that forbids duplicate phones (as the
        file leaves things), so their contacts get new_contact's duplicate-phone check."""
        declared = {c["name"]: c for c in self.spec["campaigns"]}
        names = set()
        for campaign in db.session.scalars(select(Campaign)):
            if campaign.name not in declared and not campaign.allow_duplicate_phones:
                names.add(campaign.database.name)
        for name, item in declared.items():
            allow = item.get("allow_duplicate_phones")
            if allow is None:
                stored = db.session.scalar(select(Campaign.allow_duplicate_phones)
                                           .where(Campaign.name == name))
                allow = True if stored is None else stored
            if not allow:
                names.add(item["database"])
        return names

    # -- kinds --------------------------------------------------------------------------------

    def _external_system(self, index, item):
        name = item["name"]
        label = self.where = _label("external_systems", index, name)
        self._once("external_systems", name, label, "name")
        system = db.session.scalar(select(ExternalSystem).where(ExternalSystem.name == name))
        self._check_id(ExternalSystem, label, "external system", item.get("id"), system,
                       lambda o: repr(o.name))
        if system is None:
            system = ExternalSystem(id=item.get("id"), name=name)
            self._insert(system)
        self.ids["external_systems"][name] = system.id

    def _user(self, index, item):
        username = item["username"]
        label = self.where = _label("users", index, username)
        self._once("users", username, label, "username")
        user = db.session.scalar(select(User).where(User.username == username))
        self._check_id(User, label, "user", item.get("id"), user, lambda o: repr(o.username))
        agent_spec = item.get("agent") or {}
        wants_agent = item["role"] == "Agente"
        supervisor_spec = item.get("supervisor")
        if wants_agent:
            self._check_agent_id(label, agent_spec.get("id"), user)
            self._check_extension_free(label, agent_spec.get("sip_extension"), user)
        if supervisor_spec:
            self._check_extension_free(label, supervisor_spec["sip_extension"], user,
                                       "supervisor.sip_extension")

        if user is None:
            if "password" not in item:
                self.fail(label, "password", "required to create the user")
            user = user_service.create_user(
                username, item["password"], item["role"], item.get("first_name", ""),
                item.get("last_name", ""), item.get("email", ""), is_active=item["active"],
                user_id=item.get("id"), agent_id=agent_spec.get("id"),
                sip_extension=agent_spec.get("sip_extension"))
            self._inserted("users", item.get("id"))
            if wants_agent:
                self._inserted("agents", agent_spec.get("id"))
        else:
            self._apply(user, item, {"role": "role", "first_name": "first_name",
                                     "last_name": "last_name", "email": "email",
                                     "active": "is_active"})
            if "password" in item and not user_service.check_password(user.password_hash, item["password"]):
                user_service.set_password(user, item["password"])
            if wants_agent:
                had_agent = user.agent is not None
                user_service.ensure_agent(user, agent_id=agent_spec.get("id"),
                                          sip_extension=agent_spec.get("sip_extension"))
                if not had_agent:
                    self._inserted("agents", agent_spec.get("id"))
            db.session.flush()

        self.ids["users"][username] = user.id
        if wants_agent and "group" in agent_spec and user.agent.group != agent_spec["group"]:
            user.agent.group = agent_spec["group"]
        if supervisor_spec:
            user_service.ensure_supervisor_phone(user, supervisor_spec["sip_extension"])
            db.session.flush()
        if user.agent is not None:
            for system_name, external_id in (agent_spec.get("external_ids") or {}).items():
                self._agent_external_id(label, user, system_name, external_id)
            if wants_agent:
                self.ids["agents"][username] = user.agent.id

    def _check_agent_id(self, label, agent_id, user):
        if agent_id is None:
            return
        if user is not None and user.agent is not None:
            if user.agent.id != agent_id:
                self.fail(label, "agent.id", f"this user's agent already exists with id "
                                             f"{user.agent.id}, not {agent_id}")
            return
        other = db.session.get(AgentProfile, agent_id)
        if other is not None:
            self.fail(label, "agent.id", f"{agent_id} is already the id of agent {other.user.username!r}")

    def _check_extension_free(self, label, extension, user, field="agent.sip_extension"):
        """Agents' and supervisors' phones share Asterisk's endpoint names: one owner each."""
        if extension is None:
            return
        for model, noun in ((AgentProfile, "agent"), (SupervisorProfile, "supervisor")):
            other = db.session.scalar(select(model).where(model.sip_extension == str(extension)))
            if other is not None and (user is None or other.user_id != user.id):
                self.fail(label, field, f"{extension} is already the extension of {noun} "
                                        f"{other.user.username!r}")

    def _agent_external_id(self, label, user, system_name, external_id):
        field = f"agent.external_ids.{system_name}"
        system = self._system_named(system_name, label, field)
        agent = user.agent
        other = db.session.scalar(select(AgentExternalId).where(
            AgentExternalId.external_system_id == system.id,
            AgentExternalId.external_agent_id == external_id,
            AgentExternalId.agent_id != agent.id))
        if other is not None:
            owner = db.session.get(AgentProfile, other.agent_id).user.username
            self.fail(label, field, f"{external_id!r} is already the id of agent {owner!r} "
                                    f"in {system_name!r}")
        link = db.session.scalar(select(AgentExternalId).where(
            AgentExternalId.external_system_id == system.id, AgentExternalId.agent_id == agent.id))
        if link is None:
            self._insert(AgentExternalId(agent_id=agent.id, external_system_id=system.id,
                                         external_agent_id=external_id))
        elif link.external_agent_id != external_id:
            link.external_agent_id = external_id
            db.session.flush()

    def _pause(self, index, item):
        name = item["name"]
        label = self.where = _label("pauses", index, name)
        self._once("pauses", name, label, "name")
        pause = db.session.scalar(select(Pause).where(Pause.name == name))
        self._check_id(Pause, label, "pause", item.get("id"), pause, lambda o: repr(o.name))
        if pause is None:
            pause = Pause(id=item.get("id"), name=name, type=item.get("type", "recreational"))
            self._insert(pause)
        else:
            self._apply(pause, item, {"type": "type"})
        self.ids["pauses"][name] = pause.id

    def _contact_database(self, index, item):
        name = item["name"]
        label = self.where = _label("contact_databases", index, name)
        self._once("contact_databases", name, label, "name")
        database = db.session.scalar(select(ContactDatabase).where(ContactDatabase.name == name))
        self._check_id(ContactDatabase, label, "contact database", item.get("id"), database,
                       lambda o: repr(o.name))
        layout = (list(item["columns"]), item["main_phone"], item.get("external_id"))
        if database is None:
            database = ContactDatabase(id=item.get("id"), name=name, columns=layout[0],
                                       main_phone=layout[1], other_phones=item.get("other_phones", []),
                                       external_id_column=layout[2])
            self._insert(database)
        else:
            stored = (list(database.columns), database.main_phone, database.external_id_column)
            for field, want, have in zip(("columns", "main_phone", "external_id"), layout, stored):
                if want != have:
                    self.fail(label, field, f"the stored database has {have!r}; the layout of an "
                                            "existing database (columns, main phone, external id) "
                                            "cannot change")
            if "other_phones" in item and list(database.other_phones or []) != item["other_phones"]:
                database.other_phones = list(item["other_phones"])
        self.ids["contact_databases"][name] = database.id
        forbid = name in self.forbid_duplicates
        found = {}
        for position, raw in enumerate(item.get("contacts") or []):
            self._contact(label, database, forbid, position, raw, found)

    def _contact(self, db_label, database, forbid, position, raw, found):
        ext_col = database.external_id_column
        main = database.main_phone
        key = raw.get(ext_col) if ext_col and raw.get(ext_col) not in (None, "") else raw.get(main)
        label = self.where = f"{db_label}: " + _label("contacts", position, key)
        given_id = None
        if "id" in raw:
            given_id = raw["id"]
            if isinstance(given_id, bool) or not isinstance(given_id, int) or given_id < 1:
                self.fail(label, "id", "Not a valid id (a positive integer).")
        data = {k: v for k, v in raw.items() if k != "id"}
        try:
            values = contact_rules.normalize(database, data)
        except contact_rules.ContactInvalid as exc:
            raise ProvisioningError(f"{label}: {exc.describe()}")
        external_id = values.get(ext_col) if ext_col else None
        phone = values[main]

        if given_id is not None:
            contact = db.session.get(Contact, given_id)
            if contact is not None and contact.database_id != database.id:
                other = db.session.get(ContactDatabase, contact.database_id)
                self.fail(label, "id", f"{given_id} is already the id of a contact of "
                                       f"database {other.name!r}")
        elif external_id is not None:
            contact = db.session.scalar(select(Contact).where(
                Contact.database_id == database.id, Contact.external_id == external_id))
        else:
            contact = db.session.scalar(select(Contact).where(
                Contact.database_id == database.id, Contact.main_phone == phone)
                .order_by(Contact.id).limit(1))

        if contact is None:
            try:
                contact = contact_rules.add(database, values, forbid, contact_id=given_id)
            except contact_rules.ContactInvalid as exc:
                raise ProvisioningError(f"{label}: {self._duplicate_text(database, exc)}")
            self._inserted("contacts", given_id)
        else:
            if contact.id in found:
                self.fail(label, "id" if given_id else (ext_col if external_id else main),
                          f"the same contact as contacts[{found[contact.id]}]")
            self._update_contact(label, database, forbid, contact, data, values)
        found[contact.id] = position
        name_key = external_id if external_id is not None else phone
        group = self.ids["contacts"].setdefault(database.name, {})
        group[name_key if name_key not in group else f"#{contact.id}"] = contact.id

    @staticmethod
    def _duplicate_text(database, exc):
        if exc.kind == "duplicate_phone":
            return f"{database.main_phone}: {exc.describe()}"
        return exc.describe()

    def _update_contact(self, label, database, forbid, contact, given, values):
        """Write the columns the file gives, when they differ; new_contact's duplicate checks
        apply to a changed external id or phone."""
        ext_col = database.external_id_column
        data = dict(contact.data or {})
        for column in given:
            data[column] = values[column]
        phone = data.get(database.main_phone, contact.main_phone)
        external_id = data.get(ext_col) if ext_col else None
        if data == contact.data and phone == contact.main_phone and external_id == contact.external_id:
            return
        others = select(Contact.id).where(Contact.database_id == database.id, Contact.id != contact.id)
        if external_id is not None and external_id != contact.external_id and db.session.scalar(
                others.where(Contact.external_id == external_id).limit(1)) is not None:
            self.fail(label, ext_col, M.DUPLICATE_EXTERNAL_ID)
        if forbid and phone != contact.main_phone and db.session.scalar(
                others.where(Contact.main_phone == phone).limit(1)) is not None:
            self.fail(label, database.main_phone, M.DUPLICATE_PHONE)
        contact.data = data
        contact.main_phone = phone
        contact.external_id = external_id
        if forbid or contact.unique_phone is not None:
            contact.unique_phone = phone
        db.session.flush()

    def _campaign(self, index, item):
        name = item["name"]
        label = self.where = _label("campaigns", index, name)
        self._once("campaigns", name, label, "name")
        campaign = db.session.scalar(select(Campaign).where(Campaign.name == name))
        self._check_id(Campaign, label, "campaign", item.get("id"), campaign, lambda o: repr(o.name))
        database = db.session.scalar(select(ContactDatabase).where(
            ContactDatabase.name == item["database"]))
        if database is None:
            self.fail(label, "database", f"unknown contact database {item['database']!r}")
        system = campaign.external_system if campaign is not None else None
        if "external_system" in item:
            system = (self._system_named(item["external_system"], label, "external_system")
                      if item["external_system"] else None)
        external_id = item["external_id"] if "external_id" in item else (
            campaign.external_id if campaign is not None else None)
        if external_id is not None and system is None:
            self.fail(label, "external_id", "needs external_system (the system the id belongs to)")
        if external_id is not None:
            other = db.session.scalar(select(Campaign).where(
                Campaign.external_system_id == system.id, Campaign.external_id == external_id,
                Campaign.name != name))
            if other is not None:
                self.fail(label, "external_id", f"{external_id!r} is already the id of campaign "
                                                f"{other.name!r} in {system.name!r}")
        agents = self._members(label, item.get("agents"), "agents")
        supervisors = self._members(label, item.get("supervisors"), "supervisors")

        if campaign is None:
            campaign = Campaign(id=item.get("id"), name=name, type=item.get("type", "manual"),
                                state=item.get("state", "active"), database=database,
                                external_system=system, external_id=external_id,
                                allow_duplicate_phones=item.get("allow_duplicate_phones", True),
                                record=item.get("record", False),
                                strategy=item.get("strategy", "leastrecent"),
                                acw_seconds=item.get("after_call_work", 0))
            self._insert(campaign)
        else:
            self._apply(campaign, item, {"type": "type", "state": "state",
                                         "allow_duplicate_phones": "allow_duplicate_phones",
                                         "record": "record", "strategy": "strategy",
                                         "after_call_work": "acw_seconds"})
            if campaign.database_id != database.id:
                campaign.database = database
            if campaign.external_system_id != (system.id if system else None):
                campaign.external_system = system
            if campaign.external_id != external_id:
                campaign.external_id = external_id
        if agents is not None and {a.id for a in campaign.agents} != {u.agent.id for u in agents}:
            campaign.agents = [u.agent for u in agents]
        if supervisors is not None and {s.id for s in campaign.supervisors} != {u.id for u in supervisors}:
            campaign.supervisors = list(supervisors)
        provisioning_crm.campaign_site(self, label, campaign, item)
        db.session.flush()
        self.ids["campaigns"][name] = campaign.id

        seen = {}
        for position, option in enumerate(item.get("disposition_options") or []):
            self._option(label, campaign, position, option, seen)

    def _members(self, label, usernames, field):
        """The users a campaign lists, checked: `agents` must be agents, `supervisors` not."""
        if usernames is None:
            return None
        members = []
        for username in dict.fromkeys(usernames):   # a name listed twice counts once
            user = self._user_named(username, label, field)
            if field == "agents" and (user.role != "Agente" or user.agent is None):
                self.fail(label, field, f"{username!r} is not an agent (role {user.role})")
            if field == "supervisors" and user.role == "Agente":
                self.fail(label, field, f"{username!r} is an agent: agents go under `agents`")
            members.append(user)
        return members

    def _option(self, campaign_label, campaign, position, item, seen):
        name = item["name"]
        label = self.where = f"{campaign_label}: " + _label("disposition_options", position, name)
        if name in seen:
            self.fail(label, "name", f"{name!r} is declared twice (also disposition_options[{seen[name]}])")
        seen[name] = position
        option = db.session.scalar(select(DispositionOption).where(
            DispositionOption.campaign_id == campaign.id, DispositionOption.name == name))
        self._check_id(DispositionOption, label, "disposition option", item.get("id"), option,
                       lambda o: f"{o.name!r} of campaign {o.campaign.name!r}")
        if option is None:
            option = DispositionOption(id=item.get("id"), campaign_id=campaign.id, name=name,
                                       type=item.get("type", "no_action"),
                                       hidden=item.get("hidden", False),
                                       crm_interaction=item.get("crm_interaction", False))
            self._insert(option)
        else:
            self._apply(option, item, {"type": "type", "hidden": "hidden",
                                       "crm_interaction": "crm_interaction"})
        self.ids["disposition_options"].setdefault(campaign.name, {})[name] = option.id

    # -- PostgreSQL sequences -----------------------------------------------------------------

    def _inserted(self, table, explicit_id):
        """Note an insert; after an explicit id, move the table's PostgreSQL sequence past it
        at once, so the run's own inserts without an id (and everyone's after it) don't
        collide. SQLite needs nothing: a rowid is max(rowid) + 1."""
        self.inserted_tables.add(table)
        if explicit_id is not None:
            self._advance_sequence(table)

    def advance_sequences(self):
        """Belt and braces before committing: every table inserted into has its sequence at
        or past max(id)."""
        for table in sorted(self.inserted_tables):
            self._advance_sequence(table)

    def _advance_sequence(self, table):
        """Move the sequence to max(id) when it is behind; it never moves back."""
        if db.session.get_bind().dialect.name != "postgresql":
            return
        db.session.flush()
        sequence = db.session.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
        if sequence is None:
            return
        max_id = db.session.scalar(text(f'SELECT MAX(id) FROM "{table}"'))
        if max_id is None:
            return
        last, called = db.session.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
        if (last + 1 if called else last) <= max_id:
            db.session.execute(text("SELECT setval(:s, :v, true)"), {"s": sequence, "v": max_id})
