"""Call recordings (contract-calls §5): the recording's URL, the file with Range, the bulk zip."""
from flask import g, request, send_file
from flask_smorest import Blueprint

from schemas.common import DetailSchema
from schemas.recordings import (BulkDownloadRequestSchema, BulkDownloadSchema, CallRecordSchema)

from .. import messages as M
from ..apidoc import request_body
from ..auth import ALL_ROLES, login_required
from ..body import read_body
from ..errors import business_error, not_found
from ..services import recordings

blp = Blueprint("recordings", __name__, url_prefix="/api/v1", description="Recordings")

LISTENERS = ("Administrador", "Gerente", "Supervisor", "Agente")


@blp.route("/call_record/<call_id>/", methods=["GET"])
@login_required(*LISTENERS)
@blp.response(200, CallRecordSchema)
@blp.alt_response(404, schema=CallRecordSchema, description="No recording, or not the caller's")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def call_record(call_id):
    """Where the call's recording is: an agent its own calls', a supervisor its campaigns'."""
    url = recordings.record_url(g.user, call_id)
    if url is None:
        raise business_error(404)
    return {"status": "OK", "record": url}


@blp.route("/grabacion/archivo/", methods=["GET"])
@login_required(*ALL_ROLES)
@blp.doc(parameters=[{"in": "query", "name": "filename", "required": True,
                      "schema": {"type": "string"},
                      "description": "/<YYYY-MM-DD>/<call id>.<format>, or "
                                     "/zip/<username>-grabaciones.zip"}])
@blp.response(200, description="The audio (or zip); `Range` requests get 206",
              content_type="audio/wav")
@blp.alt_response(206, description="Part of the file (Range)")
@blp.alt_response(404, schema=DetailSchema, description="Not a recording the caller may hear, "
                  "or outside the recordings folder")
@blp.alt_response(403, schema=DetailSchema, description="Authentication failure")
def recording_file():
    """A recording file (or the caller's bulk zip). [better] only to the call's agent and its
    campaign's supervisors (and Administrador, Gerente)."""
    found = recordings.file_for(g.user, request.args.get("filename"))
    if found is None:
        raise not_found()
    path, mimetype = found
    return send_file(path, mimetype=mimetype, conditional=True, max_age=0)


@blp.route("/grabacion/descarga_masiva", methods=["POST"])
@login_required("Administrador", "Gerente", "Supervisor")
@blp.doc(**request_body(BulkDownloadRequestSchema))
@blp.response(200, BulkDownloadSchema)
@blp.alt_response(400, schema=BulkDownloadSchema, description="`files` is not a JSON list of "
                  "objects with `archivo`")
@blp.alt_response(403, schema=DetailSchema, description="Authentication or role failure")
def bulk_download():
    """Zip the listed recordings (those the caller may hear) with `datos.csv`; served later at
    /api/v1/grabacion/archivo/?filename=/zip/<username>-grabaciones.zip."""
    data = read_body(lambda message: business_error(400, message=message))
    files = recordings.parse_files(data.get("files"))
    if files is None:
        raise business_error(400, message=M.INVALID_FIELD_VALUE % {"field": "files"})
    recordings.start_zip(g.user, files)
    return {"status": "OK", "msg": M.ZIP_STARTED}
