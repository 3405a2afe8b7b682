"""Request bodies of external sites, their authentications and webhooks (contract-calls §6)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from oml_server import messages as M

_URL = validate.URL(schemes={"http", "https"}, require_tld=False)


class _Bool(fields.Boolean):
    truthy = fields.Boolean.truthy | {"on"}


class ExternalSiteAuthenticationSchema(Schema):
    nombre = fields.String(required=True, validate=validate.Length(min=1, max=128))
    url = fields.String(required=True, validate=[validate.Length(max=2048), _URL])
    username = fields.String(required=True, validate=validate.Length(min=1, max=128))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024), load_only=True)
    campo_token = fields.String(load_default="token", validate=validate.Length(min=1, max=128))
    duracion = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10 ** 8))
    campo_duracion = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Length(max=128))
    ssl_estricto = _Bool(load_default=True)

    @validates_schema
    def _lifetime(self, data, partial=False, **kwargs):
        if not partial and data.get("duracion", 0) == 0 and not data.get("campo_duracion"):
            raise ValidationError(str(M.DURATION_FIELD_NEEDED), "campo_duracion")


class ExternalSiteSchema(Schema):
    nombre = fields.String(required=True, validate=validate.Length(min=1, max=128))
    url = fields.String(required=True, validate=[validate.Length(max=2048), _URL])
    oculto = _Bool(load_default=False)
    disparador = fields.Integer(required=True, validate=validate.OneOf((1, 2, 3, 4)))
    metodo = fields.Integer(required=True, validate=validate.OneOf((1, 2)))
    formato = fields.Integer(load_default=None, allow_none=True, validate=validate.OneOf((1, 2, 3, 4)))
    objetivo = fields.Integer(load_default=None, allow_none=True, validate=validate.OneOf((1, 2)))
    autenticacion = fields.Integer(load_default=None, allow_none=True)
    signing_secret = fields.String(load_default=None, allow_none=True, load_only=True,
                                   validate=validate.Length(max=256))

    @validates_schema
    def _combination(self, data, **kwargs):
        """OMniLeads' rules: GET takes no format, POST needs one; JSON or Servidor take no
        target, the others (opened by the browser) need one."""
        errors = {}
        if data.get("metodo") == 1 and data.get("formato") is not None:
            errors["formato"] = [str(M.GET_TAKES_NO_FORMAT)]
        if data.get("metodo") == 2 and data.get("formato") is None:
            errors["formato"] = [str(M.POST_NEEDS_FORMAT)]
        no_target = data.get("disparador") == 3 or data.get("formato") == 4
        if no_target and data.get("objetivo") is not None:
            errors["objetivo"] = [str(M.NO_TARGET_HERE)]
        if not no_target and data.get("objetivo") is None and "disparador" in data:
            errors["objetivo"] = [str(M.FIELD_REQUIRED)]
        if errors:
            raise ValidationError(errors)


class WebhookSchema(Schema):
    url = fields.String(required=True, validate=[validate.Length(max=2048), _URL])
    events = fields.Raw(load_default=lambda: ["*"])
    secret = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=256))
    active = _Bool(load_default=True)

    @validates_schema
    def _events(self, data, **kwargs):
        from oml_server.services.webhooks import EVENT_TYPES
        events = data.get("events")
        if events == "*":
            return
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise ValidationError(str(M.EVENTS_LIST), "events")
        unknown = [e for e in events if e != "*" and e not in EVENT_TYPES
                   and not (e.endswith(".*") and any(t.startswith(e[:-1]) for t in EVENT_TYPES))]
        if unknown:
            raise ValidationError(str(M.UNKNOWN_EVENTS) + ": " + ", ".join(unknown), "events")


class CrmErrorSchema(Schema):
    """An error of these endpoints: `{"status": "ERROR", "message", "errors"}`; a path that
    matches no route (e.g. a negative id) is the framework's `{"detail": …}`."""
    status = fields.String(metadata={"enum": ["ERROR"]})
    message = fields.String()
    errors = fields.Raw(metadata={"description": "object of field lists, or a list"})
    detail = fields.String()
