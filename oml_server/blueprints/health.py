"""GET /api/v1/health [extension]: is the database reachable, and the telephony engine?"""
import logging

from flask_smorest import Blueprint
from sqlalchemy import text

from schemas.health import HealthSchema

from ..apidoc import NO_AUTH
from ..extensions import db
from ..services import telephony

log = logging.getLogger(__name__)

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Health [extension]")


@blp.route("/health/", methods=["GET"])
@blp.doc(**NO_AUTH)
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="The database is not reachable")
def health():
    """Liveness for load balancers: no authentication. 503 when the database is down."""
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        log.warning("health: database unreachable", exc_info=True)
        database = "error"
    finally:
        try:
            db.session.rollback()
        except Exception:
            pass
    ari = telephony.status()
    healthy = database == "ok" and ari in ("ok", "disabled")
    body = {"status": "ok" if healthy else "degraded", "database": database, "ari": ari,
            "ari_problems": telephony.problems()}
    return body, (200 if database == "ok" else 503)
