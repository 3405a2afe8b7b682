"""The shape of a provisioning file (docs/provisioning-and-import.md).

Only the shape is checked here (types, required keys, enumerations, a database's column
layout); references between objects, ids already taken and contacts are checked by
`oml_server.services.provisioning`, which knows the database. Every key unknown to the format
is an error, so a typo never passes silently.
"""
import re

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from oml_server.models import (CAMPAIGN_STATES, CAMPAIGN_TYPES, OPTION_TYPES, PAUSE_TYPES, ROLES,
                               STRATEGIES)

# The kinds of object, in the order they are provisioned (each may refer to the ones before).
KINDS = ("external_systems", "users", "pauses", "contact_databases",
         "external_site_authentications", "external_sites", "webhooks", "campaigns")
# External sites: the file's words for OMniLeads' numeric codes, in code order (1, 2, …).
SITE_TRIGGERS = ("agent", "automatic", "server", "disposition")
SITE_METHODS = ("GET", "POST")
SITE_FORMATS = ("multipart", "form", "text", "json")
SITE_TARGETS = ("embedded", "new_tab")
CRM_PARAMETER_TYPES = ("campaign", "contact", "call", "fixed", "dialplan", "disposition")
MAX_ID = 2**31 - 1  # the id columns are 32-bit integers
EXTENSION_RE = re.compile(r"^[0-9A-Za-z_+*#-]{1,32}$")


def _id(**kwargs):
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def _name(max_length=128, **kwargs):
    return fields.String(required=True, validate=validate.Length(min=1, max=max_length), **kwargs)


class Text(fields.String):
    """A string, or a number written without quotes in YAML (an extension, an external id)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class ExternalSystemSchema(Schema):
    id = _id()
    name = _name()


class AgentSchema(Schema):
    id = _id()
    sip_extension = Text(validate=validate.Regexp(
        EXTENSION_RE, error="Must be 1 to 32 letters, digits or _+*#-."))
    external_ids = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=128)),
                               values=Text(validate=validate.Length(min=1, max=128)))
    group = Text(validate=validate.Length(max=128))


class SupervisorPhoneSchema(Schema):
    sip_extension = Text(required=True, validate=validate.Regexp(
        EXTENSION_RE, error="Must be 1 to 32 letters, digits or _+*#-."))


class UserSchema(Schema):
    id = _id()
    username = _name(150)
    password = fields.String(validate=validate.Length(min=1, max=1024))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    first_name = fields.String(validate=validate.Length(max=150))
    last_name = fields.String(validate=validate.Length(max=150))
    email = fields.String(validate=validate.Length(max=254))
    active = fields.Boolean(load_default=True)
    agent = fields.Nested(AgentSchema)
    supervisor = fields.Nested(SupervisorPhoneSchema)

    @validates_schema
    def _agent_needs_agent_role(self, data, **kwargs):
        if "agent" in data and data.get("role") not in (None, "Agente"):
            raise ValidationError("Only a user with role Agente has an agent profile.", "agent")
        if "supervisor" in data and data.get("role") == "Agente":
            raise ValidationError("An agent has no supervisor phone (its own is agent."
                                  "sip_extension).", "supervisor")


class PauseSchema(Schema):
    id = _id()
    name = _name()
    type = fields.String(validate=validate.OneOf(PAUSE_TYPES))


class ContactDatabaseSchema(Schema):
    id = _id()
    name = _name()
    columns = fields.List(fields.String(validate=validate.Length(min=1, max=128)),
                          required=True, validate=validate.Length(min=1))
    main_phone = fields.String(required=True)
    other_phones = fields.List(fields.String())
    external_id = fields.String(allow_none=True)
    # Each contact is checked like new_contact's body, against this database's columns.
    contacts = fields.List(fields.Dict(keys=fields.String()), allow_none=True)

    @validates_schema
    def _layout(self, data, **kwargs):
        columns = data.get("columns")
        if not columns:
            return
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValidationError(f"Repeated columns: {', '.join(repeated)}.", "columns")
        if data.get("main_phone") not in columns:
            raise ValidationError("Must be one of the columns.", "main_phone")
        strangers = [c for c in data.get("other_phones") or [] if c not in columns]
        if strangers:
            raise ValidationError(f"Not among the columns: {', '.join(strangers)}.", "other_phones")
        if data.get("external_id") is not None and data["external_id"] not in columns:
            raise ValidationError("Must be one of the columns (or null).", "external_id")
        if data.get("external_id") is not None and data["external_id"] in (
                [data["main_phone"]] + list(data.get("other_phones") or [])):
            raise ValidationError("Cannot be a phone column.", "external_id")


class DispositionOptionSchema(Schema):
    id = _id()
    name = _name()
    type = fields.String(validate=validate.OneOf(OPTION_TYPES))
    hidden = fields.Boolean()
    crm_interaction = fields.Boolean()


class ExternalSiteAuthenticationSchema(Schema):
    name = _name()
    url = fields.String(required=True)
    username = fields.String(required=True)
    password = fields.String(required=True)
    token_field = fields.String()
    duration = fields.Integer(strict=True)
    duration_field = fields.String(allow_none=True)
    strict_ssl = fields.Boolean()


class ExternalSiteSchema(Schema):
    name = _name()
    url = fields.String(required=True)
    trigger = fields.String(required=True, validate=validate.OneOf(SITE_TRIGGERS))
    method = fields.String(required=True, validate=validate.OneOf(SITE_METHODS))
    format = fields.String(allow_none=True, validate=validate.OneOf(SITE_FORMATS))
    target = fields.String(allow_none=True, validate=validate.OneOf(SITE_TARGETS))
    authentication = fields.String(allow_none=True)
    signing_secret = fields.String(allow_none=True)
    hidden = fields.Boolean()


class WebhookSchema(Schema):
    url = fields.String(required=True)
    events = fields.Raw()
    secret = fields.String(allow_none=True)
    active = fields.Boolean()


class CrmParameterSchema(Schema):
    name = _name()
    type = fields.String(required=True, validate=validate.OneOf(CRM_PARAMETER_TYPES))
    value = fields.Raw(required=True)


class CampaignSchema(Schema):
    id = _id()
    name = _name()
    type = fields.String(validate=validate.OneOf(CAMPAIGN_TYPES))
    state = fields.String(validate=validate.OneOf(CAMPAIGN_STATES))
    database = fields.String(required=True, validate=validate.Length(min=1))
    external_system = fields.String(allow_none=True)
    external_id = Text(allow_none=True, validate=validate.Length(min=1, max=128))
    agents = fields.List(fields.String())
    supervisors = fields.List(fields.String())
    allow_duplicate_phones = fields.Boolean()
    record = fields.Boolean()
    strategy = fields.String(validate=validate.OneOf(STRATEGIES))
    # Seconds of after-call work (the ACW pause) after each call's disposition; 0: ready again.
    after_call_work = fields.Integer(validate=validate.Range(min=0, max=3600))
    disposition_options = fields.List(fields.Nested(DispositionOptionSchema))
    external_site = fields.String(allow_none=True)
    crm_parameters = fields.List(fields.Nested(CrmParameterSchema))

    @validates_schema
    def _external_pair(self, data, **kwargs):
        if data.get("external_id") is not None and not data.get("external_system"):
            raise ValidationError("Needs external_system (the system the id belongs to).",
                                  "external_id")


class ProvisioningSchema(Schema):
    # A kind may be absent or empty (`users:` with nothing under it): nothing to do for it.
    external_systems = fields.List(fields.Nested(ExternalSystemSchema), allow_none=True)
    users = fields.List(fields.Nested(UserSchema), allow_none=True)
    pauses = fields.List(fields.Nested(PauseSchema), allow_none=True)
    contact_databases = fields.List(fields.Nested(ContactDatabaseSchema), allow_none=True)
    external_site_authentications = fields.List(fields.Nested(ExternalSiteAuthenticationSchema),
                                                allow_none=True)
    external_sites = fields.List(fields.Nested(ExternalSiteSchema), allow_none=True)
    webhooks = fields.List(fields.Nested(WebhookSchema), allow_none=True)
    campaigns = fields.List(fields.Nested(CampaignSchema), allow_none=True)

    @post_load
    def _absent_is_empty(self, data, **kwargs):
        return {kind: data.get(kind) or [] for kind in KINDS}


