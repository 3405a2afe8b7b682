"""new_contact (contract §2.3)."""
from marshmallow import INCLUDE, Schema, fields

from .common import id_field


class NewContactRequestSchema(Schema):
    """`idCampaign`, optional `idExternalSystem`, and one key per column of the campaign's
    contact database (named as database_metadata's `fields`)."""

    class Meta:
        unknown = INCLUDE

    idCampaign = id_field("the internal campaign id; with idExternalSystem, the campaign's "
                          "external id in that system", required=True)
    idExternalSystem = id_field("optional: an external system's id")


class NewContactResponseSchema(Schema):
    status = fields.String(metadata={"enum": ["OK"]})
    message = fields.String(metadata={"example": "Contacto agregado"})
    id = fields.Integer(metadata={"description": "the new contact's id"})
    contacto = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), metadata={
        "description": "every column with its value: data columns not sent are \"\", an "
                       "external id not sent is null",
        "example": {"TELEFONO": "3511111111", "NOMBRE": "nombre", "FECHA": "", "HORA": "",
                    "id_ext": None}})
