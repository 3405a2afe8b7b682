"""Recording a campaign's calls (campaigns with `record`): from the moment both parties are in
the call's mixing bridge until the bridge is destroyed at the end of the call, one file per call.

    bridged → POST /bridges/<bridge>/record name=<YYYY-MM-DD>/<call id> (the call's start day,
              UTC) in RECORDING_FORMAT; the call row keeps `recording_file`
    the call ends → its teardown destroys the bridge → Asterisk finishes the file and sends
              RecordingFinished → outbox `recording.ready` (RecordingFailed: `recording.failed`)

Asterisk writes under its astspooldir/recording/; the REST server serves the same folder
(RECORDINGS_DIR). Recording the bridge, not a channel, keeps one file across whoever joins the
bridge (a supervisor's barge, a take-call).
"""
import logging

from sqlalchemy import bindparam, select

from oml_server.database import Prepared, run
from oml_server.models import Call, Campaign
from oml_server.services.recordings import file_name

from . import call_store, ids
from .ari_client import AriError

log = logging.getLogger(__name__)

_calls = Call.__table__
_CALL_AND_CAMPAIGN = Prepared(
    select(_calls.c.bridge_id, _calls.c.created_at, Campaign.record)
    .join(Campaign, Campaign.id == _calls.c.campaign_id).where(_calls.c.id == bindparam("cid")))


def start(ari, settings, call_id, bridged=None):
    """Start recording the bridged call when its campaign records; never fails the call.
    `bridged`: what the bridged step returned; when it carries the campaign's `record` flag
    (PostgreSQL's one-statement step does) there is nothing to read first."""
    if bridged is not None and "record" in bridged._fields:
        row = bridged
    else:
        alone = call_store.read_alone()
        row = run(_CALL_AND_CAMPAIGN, {"cid": call_id}).first()  # one read per bridged call
        if alone:
            call_store.release()
    if row is None or not row.record or not row.bridge_id:
        return None
    fmt = settings.get("RECORDING_FORMAT", "wav")
    name = file_name(call_id, row.created_at, fmt)
    try:
        ari.request("POST", f"/bridges/{row.bridge_id}/record",
                    {"name": name.rsplit(".", 1)[0], "format": fmt, "ifExists": "overwrite",
                     "beep": "false", "terminateOn": "none"})
    except AriError as exc:
        log.warning("call %s: not recorded: %s", call_id, exc)
        call_store.note(call_id, "recording.failed", reason=str(exc)[:200])
        return None
    call_store.set_fields(call_id, recording_file=name)
    return name


def finished(event):
    """RecordingFinished / RecordingFailed of one of our bridges: the call's recording event."""
    recording = event.get("recording") or {}
    target = recording.get("target_uri") or ""
    call_id = ids.call_id_of(target.partition(":")[2])
    if call_id is None:
        return
    kind = "recording.ready" if event.get("type") == "RecordingFinished" else "recording.failed"
    call_store.note(call_id, kind, file=f"{recording.get('name')}.{recording.get('format')}",
                    duration=recording.get("duration"), cause=recording.get("cause"))
