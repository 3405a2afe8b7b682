"""Dispositions (contract §2.6) and new_contact/disposition (§2.7)."""
from marshmallow import Schema, fields

from .common import id_field


class DispositionRequestSchema(Schema):
    """Body of POST /disposition/ and PUT /disposition/<id>/ (JSON or form-encoded)."""
    idContact = id_field("the contact's id; its external id when idExternalSystem is given",
                         required=True)
    idDispositionOption = id_field("a visible option; its campaign is the disposition's campaign",
                                   required=True)
    comments = fields.String(metadata={"description": 'default ""'})
    callid = fields.String(allow_none=True,
                           metadata={"description": "at most 32 characters; omitted → null",
                                     "maxLength": 32})
    idExternalSystem = id_field("when present, idContact is the contact's external id")


class DispositionSchema(Schema):
    """One disposition, as GET, POST and PUT answer it."""
    id = fields.Integer(required=True)
    idContact = fields.Integer(required=True, metadata={"description": "the contact's internal id"})
    callid = fields.String(allow_none=True)
    idDispositionOption = fields.Integer(required=True)
    comments = fields.String()


class DispositionErrorSchema(Schema):
    """`{"status": "ERROR", <field>: "<message>"}`: one plain string, not a list."""
    status = fields.String(required=True, metadata={"enum": ["ERROR"]})
    idDispositionOption = fields.String(metadata={"example": "Disposition option id not found"})
    idContact = fields.String(metadata={"example": "Contact id not found"})
    idExternalSystem = fields.String(metadata={"description": "unknown external system"})
    callid = fields.String(metadata={"example": "Ensure this field has no more than 32 characters."})
    comments = fields.String(metadata={"example": "Not a valid string."})
    msg = fields.String(metadata={
        "example": "There is another disposition for this contact on this campaign",
        "description": "also the reason a body could not be read"})


class NewContactDispositionRequestSchema(Schema):
    """Body of POST /new_contact/disposition/; any data column of the campaign's contact
    database may be added by name (keys that are not columns are ignored)."""
    idDispositionOption = id_field("a visible option; its campaign is the contact's campaign",
                                   required=True)
    phone = fields.String(required=True, metadata={"description": "the main phone"})
    idExternalContact = fields.String(metadata={"description": "the contact's external id"})
    comments = fields.String(metadata={"description": 'default ""'})
    callid = fields.String(allow_none=True, metadata={"maxLength": 32})


class NewContactDispositionSchema(Schema):
    """The disposition created (OMniLeads does not return the contact's id)."""
    id = fields.Integer(required=True)
    callid = fields.String(allow_none=True)
    idDispositionOption = fields.Integer(required=True)
    comments = fields.String()


class NewContactDispositionErrorSchema(DispositionErrorSchema):
    idExternalContact = fields.String(
        metadata={"example": "There is another contact with this external id on this database"})
    contacto = fields.String(metadata={"example": "Contact data is invalid"})
