"""database_metadata (contract §2.2) and disposition options (§2.5)."""
from marshmallow import Schema, fields

from .common import id_field


class DatabaseMetadataRequestSchema(Schema):
    idCampaign = id_field("the internal campaign id; with idExternalSystem, the campaign's "
                          "external id in that system", required=True)
    idExternalSystem = id_field("optional: an external system's id")


class DatabaseMetadataResponseSchema(Schema):
    status = fields.String(metadata={"enum": ["OK"]})
    main_phone = fields.String(metadata={"example": "TELEFONO"})
    external_id = fields.String(allow_none=True, metadata={
        "example": "id_ext", "description": "null when the database has no external-id column"})
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields", metadata={
        "description": "every column, in order",
        "example": ["TELEFONO", "NOMBRE", "FECHA", "HORA", "id_ext"]})


class DispositionOptionSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    hidden = fields.Boolean()
