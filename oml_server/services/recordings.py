"""Call recordings (contract-calls §5): who may hear which, where the files are, the bulk zip.

A recording is `calls.recording_file`, relative to RECORDINGS_DIR (`<YYYY-MM-DD>/<call id>.<fmt>`).
Access [better than OMniLeads, which serves any file to anyone logged in]: Administrador and
Gerente every call's; an agent its own calls'; a supervisor the calls of the campaigns it
supervises. Anything else, a name outside the folder, or a file not there: not found.
Bulk zips go to RECORDINGS_ZIP_DIR (default: the instance folder's `recording-zips`) as
`<username>-grabaciones.zip`, served back only to that user.
"""
import csv
import io
import logging
import os
import threading
import zipfile

from flask import current_app
from sqlalchemy import exists, select

from ..extensions import db
from ..models import Call, campaign_supervisors
from .lookup import agent_id_of

log = logging.getLogger(__name__)

SEES_ALL = ("Administrador", "Gerente")
MIME = {"wav": "audio/wav", "gsm": "audio/x-gsm", "mp3": "audio/mpeg", "ogg": "audio/ogg",
        "zip": "application/zip"}


def file_name(call_id, created_at, fmt=None):
    """A call's recording, relative to RECORDINGS_DIR: `<YYYY-MM-DD>/<call id>.<format>` (the
    call's start day). Known before the recording starts: the agent's INVITE
    (`Omlrecfilename`) and the CRM's Servidor request (`rec_filename`) name it."""
    fmt = fmt or current_app.config.get("RECORDING_FORMAT", "wav")
    return f"{created_at:%Y-%m-%d}/{call_id}.{fmt}"


def may_hear(user, call):
    if user.role in SEES_ALL:
        return True
    if user.role == "Agente":
        return call.agent_id is not None and call.agent_id == agent_id_of(user)
    if user.role == "Supervisor" and call.campaign_id is not None:
        return bool(db.session.scalar(select(exists().where(
            campaign_supervisors.c.campaign_id == call.campaign_id,
            campaign_supervisors.c.user_id == user.id))))
    return False


def record_url(user, call_id):
    """call_record/<id>: the OMniLeads URL of the call's recording, or None."""
    call = db.session.get(Call, call_id) if isinstance(call_id, str) and len(call_id) <= 32 else None
    if call is None or not call.recording_file or not may_hear(user, call):
        return None
    return f"/api/v1/grabacion/archivo/?filename=/{call.recording_file}"


def _inside(folder, name):
    """The absolute path of `name` under `folder`, or None when it would leave it."""
    if not folder:
        return None
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    return path if path.startswith(root + os.sep) else None


def zip_dir():
    return (current_app.config.get("RECORDINGS_ZIP_DIR")
            or os.path.join(current_app.instance_path, "recording-zips"))


def zip_name(user):
    return f"{user.username}-grabaciones.zip"


def file_for(user, raw_name):
    """(path, mimetype) of a recording (or the user's own zip) the user may download, or None."""
    if not isinstance(raw_name, str) or not raw_name.strip() or "\0" in raw_name:
        return None
    name = raw_name.strip().lstrip("/")
    if name.startswith("zip/"):
        if name != f"zip/{zip_name(user)}":
            return None
        path = _inside(zip_dir(), zip_name(user))
        return (path, MIME["zip"]) if path and os.path.isfile(path) else None
    call = db.session.scalar(select(Call).where(Call.recording_file == name))
    if call is None or not may_hear(user, call):
        return None
    path = _inside(current_app.config["RECORDINGS_DIR"], name)
    if path is None or not os.path.isfile(path):
        return None
    return path, MIME.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def parse_files(raw):
    """The bulk download's `files`: a JSON list of objects each with a text `archivo`."""
    import json
    try:
        files = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    if not isinstance(files, list) or not files or len(files) > 10000 or not all(
            isinstance(f, dict) and isinstance(f.get("archivo"), str) for f in files):
        return None
    return files


def start_zip(user, files):
    """Build the user's zip in the background (a greenlet under the gevent server): each file
    the user may hear, plus `datos.csv` with what the client sent about each."""
    allowed = []
    for entry in files:
        found = file_for(user, entry["archivo"])
        if found is not None and not entry["archivo"].lstrip("/").startswith("zip/"):
            allowed.append((entry, found[0]))
    app = current_app._get_current_object()
    target = os.path.join(zip_dir(), zip_name(user))
    thread = threading.Thread(target=_write_zip, args=(app, target, allowed), daemon=True)
    thread.start()
    return thread


def _write_zip(app, target, allowed):
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = target + ".part"
        columns = list(dict.fromkeys(key for entry, _ in allowed for key in entry))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=columns or ["archivo"], extrasaction="ignore")
        writer.writeheader()
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for entry, path in allowed:
                archive.write(path, entry["archivo"].lstrip("/"))
                writer.writerow({k: v if isinstance(v, (str, int, float)) else str(v)
                                 for k, v in entry.items()})
            archive.writestr("datos.csv", table.getvalue())
        os.replace(partial, target)  # a download never sees half a zip
    except OSError:
        with app.app_context():
            log.exception("recordings zip %s not written", target)
