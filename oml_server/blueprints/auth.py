"""Login (contract §2.1) and the web session pages OMniLeads' agent console uses (§1.3)."""
from urllib.parse import urlsplit

from flask import Blueprint as FlaskBlueprint
from flask import redirect, render_template, request, session
from flask_smorest import Blueprint

from schemas.auth import LoginFieldErrorsSchema, LoginRequestSchema, LoginResponseSchema
from schemas.common import DetailSchema

from .. import messages as M
from ..apidoc import NO_AUTH, request_body
from ..auth import (CSRF_COOKIE, csrf_token, issue_token, set_csrf_cookie, start_session,
                    tokens_match)
from ..body import read_body
from ..database import statements_commit_alone
from ..errors import ContractError, Detail
from ..extensions import db
from ..services import agent_presence, throttle, users

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Authentication")
plain_blueprint = FlaskBlueprint("web_session", __name__)


def _required_fields(data, names):
    errors = {}
    for name in names:
        value = data.get(name)
        if value is None:
            errors[name] = [M.FIELD_REQUIRED]
        elif not isinstance(value, str) or not value.strip():
            errors[name] = [M.FIELD_BLANK]
    return errors


@blp.route("/login/", methods=["POST"])
@blp.doc(**request_body(LoginRequestSchema), **NO_AUTH)
@blp.response(200, LoginResponseSchema)
@blp.alt_response(400, schema=LoginFieldErrorsSchema, description="Missing or blank fields")
@blp.alt_response(404, schema=DetailSchema, description="Invalid Credentials or activate account")
@blp.alt_response(429, schema=DetailSchema, description="Too many failed attempts for this username "
                  "from this address, or from this address: wait `Retry-After` seconds")
def login():
    """Obtain a token (Bearer) for the other endpoints."""
    data = read_body(lambda message: Detail(400, message))
    errors = _required_fields(data, ("username", "password"))
    if errors:
        raise ContractError(400, errors)
    user = _check_credentials(data["username"], data["password"])
    if user is None:
        raise Detail(404, M.INVALID_CREDENTIALS)
    token, ttl = issue_token(user)
    body = {"first_name": user.first_name, "last_name": user.last_name, "email": user.email}
    if user.agent_id is not None:
        body["agent_id"] = user.agent_id
    return {"user": body, "expires_in": f"{ttl - 0.01:.2f}", "token": token}


def _check_credentials(username, password):
    """The user, or None; throttled per username and client address (services/throttle.py).

    Its two reads (the counts, the user) run alone, prepared, holding no connection while the
    password is checked; the writes that may follow (a failure counted, earlier failures
    cleared) are each atomic, so on PostgreSQL none runs in a transaction block. A login that
    succeeds without earlier failures costs two round trips (bench/README.md)."""
    address = request.remote_addr
    try:
        failures = throttle.before_login(username, address)
    except throttle.Refused as exc:
        error = Detail(429, M.TOO_MANY_LOGINS % {"seconds": exc.retry_after})
        error.headers = {"Retry-After": str(exc.retry_after)}
        raise error
    user = users.check_credentials(username, password)
    if user is None:
        statements_commit_alone(db.session)
        throttle.login_failed(username, address)
    elif failures:
        statements_commit_alone(db.session)
        throttle.login_succeeded(username, address)
    return user


def _too_many_on_form(refused):
    from flask import make_response
    response = make_response(render_template("login.html", error=refused.body["detail"],
                                             csrf_token=csrf_token(),
                                             next=request.args.get("next", "")), 429)
    response.headers.update(refused.headers)
    return response


@plain_blueprint.route("/accounts/login/", methods=["GET", "POST"], strict_slashes=False)
def web_login():
    """The HTML login form: a session cookie plus the `csrftoken` cookie (contract §1.3)."""
    error = None
    if request.method == "POST":
        # Checked against the csrftoken cookie even before any session exists: otherwise a
        # page elsewhere could log a victim's browser into the attacker's account (login CSRF).
        if not tokens_match(request.form.get("csrfmiddlewaretoken"), request.cookies.get(CSRF_COOKIE)):
            error = M.CSRF_FAILED
        else:
            try:
                user = _check_credentials(request.form.get("username", ""),
                                          request.form.get("password", ""))
            except ContractError as refused:  # too many failures: the page says so, 429
                return _too_many_on_form(refused)
            if user is not None:
                response = redirect(_safe_next(request.args.get("next") or request.form.get("next")))
                start_session(response, user)
                return response
            error = M.INVALID_CREDENTIALS
    token = csrf_token()
    response = render_template_response(error, token)
    set_csrf_cookie(response, token)
    return response


def render_template_response(error, token):
    from flask import make_response
    status = 200 if error is None else 400
    return make_response(render_template("login.html", error=error, csrf_token=token,
                                         next=request.args.get("next", "")), status)


DEFAULT_NEXT = "/docs"


def _safe_next(target):
    r"""`target` when it is a path on this server, else the default page. An open redirect
    would let a phishing link borrow our login page. Browsers read `\` as `/` and drop tabs
    and newlines, so `/\evil` and `/<tab>/evil` lead to other hosts just like `//evil`."""
    if not target or not target.startswith("/"):
        return DEFAULT_NEXT
    if any(c == "\\" or c <= " " or c == "\x7f" for c in target):
        return DEFAULT_NEXT
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return DEFAULT_NEXT
    return target


@plain_blueprint.route("/agente/logout/", methods=["GET"], strict_slashes=False)
def web_logout():
    """End the web session (and the agent's Asterisk session), then back to the login page."""
    uid = session.get("uid")
    if uid is not None:
        agent_presence.logout_user_id(uid)
    session.clear()
    return redirect("/accounts/login/")
