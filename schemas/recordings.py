"""Recordings (contract-calls §5)."""
from marshmallow import Schema, fields


class CallRecordSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["OK", "ERROR"]})
    record = fields.String(metadata={"description": "/api/v1/grabacion/archivo/?filename=/<YYYY-MM-DD>/<call id>.<format>"})


class BulkDownloadRequestSchema(Schema):
    files = fields.String(required=True, metadata={
        "description": 'a JSON list of {"archivo": "<YYYY-MM-DD>/<file>", …}; the other keys '
                       "go to datos.csv"})


class BulkDownloadSchema(Schema):
    status = fields.String(required=True)
    msg = fields.String()
    message = fields.String()
