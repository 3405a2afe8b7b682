"""The agent console: the page at `/agente/` (OMniLeads' path), its phone library, and the
agent's session state it polls [extension]."""
import os

from flask import Blueprint as FlaskBlueprint
from flask import abort, current_app, g, make_response, redirect, render_template, send_from_directory
from flask_babel import get_locale
from flask_smorest import Blueprint

from schemas.console import AgentStateSchema

from ..auth import AGENT, CSRF_COOKIE, CSRF_HEADER, authenticate, login_required
from ..errors import ContractError, business_error
from ..services import agent_console
from ..services.lookup import agent_id_of

blp = Blueprint("console", __name__, url_prefix="/api/v1", description="Agent console [extension]")
plain_blueprint = FlaskBlueprint("console_page", __name__)

LOGIN_PAGE = "/accounts/login/?next=/agente/"
VENDOR_FILES = ("jssip.min.js",)


@blp.route("/agent/state/", methods=["GET"])
@login_required(*AGENT)
@blp.response(200, AgentStateSchema)
def agent_state():
    """[extension] The calling agent's session as the server knows it, and its live call.

    An Agente user without an agent profile: `{"status": "ERROR"}` (HTTP 200, as §2.8)."""
    agent_id = agent_id_of(g.user)
    if agent_id is None:
        raise business_error(200)
    return agent_console.state(agent_id)


@plain_blueprint.route("/agente/", methods=["GET"])
def agent_console_page():
    """The console, for a logged-in agent (web session); anyone else goes to the login page."""
    try:
        user = authenticate(orm=True)
    except ContractError:
        return redirect(LOGIN_PAGE)
    if user.agent is None:
        return redirect(LOGIN_PAGE)
    locale = str(get_locale())
    data = agent_console.page_data(user, locale, CSRF_COOKIE, CSRF_HEADER)
    response = make_response(render_template("console.html", data=data, locale=locale))
    # Everything the page loads comes from here; its only other connections are the phone's
    # and the CRM pop of its campaigns' sites.
    crm = data["crm"]
    frames = _sources(crm["frame"]) or "'none'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob:; connect-src {_sources(['self', data['sip']['wsUrl'], *crm['connect']])}; "
        f"frame-src {frames}; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action {_sources(['self', *crm['form']])}")
    response.headers["Cache-Control"] = "no-store"
    return response


def _sources(items):
    return " ".join("'self'" if item == "self" else item for item in items)


@plain_blueprint.route("/console-vendor/<path:filename>", methods=["GET"])
def console_vendor(filename):
    """The phone library, bundled from the npm registry by `make console` (console/dist)."""
    if filename not in VENDOR_FILES:
        abort(404)
    folder = current_app.config.get("CONSOLE_VENDOR_DIR") or os.path.join(
        os.path.dirname(current_app.root_path), "console", "dist")
    return send_from_directory(folder, filename, max_age=3600)


@plain_blueprint.route("/favicon.ico", methods=["GET"])
def favicon():
    """No icon: 204, so that browsers opening the login page log no failed request."""
    return "", 204
