"""[extension] GET /api/v1/events/: the live event stream (text/event-stream)."""
from flask import Response, current_app, g, request
from flask_smorest import Blueprint

from ..auth import login_required
from ..extensions import db
from ..services import event_stream
from ..services.lookup import parse_id

blp = Blueprint("events", __name__, url_prefix="/api/v1",
                description="[extension] The live event stream")

WATCHERS = ("Administrador", "Gerente", "Supervisor", "Agente")


@blp.route("/events/", methods=["GET"])
@login_required(*WATCHERS)
@blp.doc(responses={"200": {"description": "`text/event-stream`: `id`, `event` (the type) and "
                                           "`data` (the webhook body) per event"}})
def events():
    """The events the caller may see, as they happen: an agent its own calls and status, a
    supervisor its campaigns'. Resumes after `Last-Event-ID` (header, or `?last_event_id=`)."""
    app = current_app._get_current_object()
    the_hub = event_stream.hub(app)
    sub = event_stream.subscriber_for(g.user)
    the_hub.subscribe(sub)   # before the replay, so nothing falls between the two
    after = parse_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
    missed = event_stream.replay(sub, after) if after is not None else []
    db.session.remove()      # the stream holds no database connection
    body = event_stream.stream(the_hub, sub, missed, app.config["STREAM_HEARTBEAT_SECONDS"])
    return Response(body, mimetype="text/event-stream",
                    # Connection: close: a stream that ended (server stopping, client too
                    # far behind) leaves no idle keep-alive connection holding a stopping
                    # worker; the client's reconnect opens a new one anyway.
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                             "Connection": "close"})
