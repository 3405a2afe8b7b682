"""The engine's heartbeat in the database, so API-only workers know whether calls can run.

The engine (`oml-server engine`, or the one inside `oml-server run`) writes its node's row every
ENGINE_HEARTBEAT_SECONDS: connected to Asterisk or not, and what the connect-time check found
missing. A worker that places calls over ARI REST reads it (cached for a second): with no
fresh, connected heartbeat it refuses makeCall at once instead of accepting a call nobody will
run, and health says why.
"""
import time

from flask import current_app
from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import EngineNode, utcnow

from .call_state import end_read

_nodes = EngineNode.__table__
STALE_BEATS = 3   # a heartbeat older than this many intervals means the engine is gone
_cache = {}       # node -> (read at, (status, problems))


def beat(node, connected, startup=None, problems=None):
    """Write the node's heartbeat (engine side)."""
    end_read()
    values = {"connected": connected, "heartbeat_at": utcnow()}
    if startup is not None:
        values["asterisk_startup"] = startup
    if problems is not None:
        values["problems"] = problems
    updated = db.session.execute(_nodes.update().where(_nodes.c.node == node).values(**values))
    if updated.rowcount == 0:
        values.setdefault("problems", [])
        db.session.execute(_nodes.insert().values(node=node, **values))
    db.session.commit()


def read(node, now=None):
    """("ok" | "disconnected" | "no_engine", problems) of a node, from its heartbeat."""
    row = db.session.execute(select(_nodes).where(_nodes.c.node == node)).first()
    if row is None:
        return "no_engine", []
    beat_at = row.heartbeat_at
    if beat_at.tzinfo is None:
        from datetime import timezone
        beat_at = beat_at.replace(tzinfo=timezone.utc)
    interval = current_app.config.get("ENGINE_HEARTBEAT_SECONDS", 5)
    age = ((now or utcnow()) - beat_at).total_seconds()
    if age > STALE_BEATS * interval:
        return "no_engine", list(row.problems or [])
    return ("ok" if row.connected else "disconnected"), list(row.problems or [])


def cached(node, ttl=1.0):
    """`read`, at most once a second per process: makeCall asks on every call."""
    hit = _cache.get(node)
    moment = time.monotonic()
    if hit is not None and moment - hit[0] < ttl:
        return hit[1]
    value = read(node)
    _cache[node] = (moment, value)
    return value
