"""Authentication (Bearer token or web session + CSRF) and role checks, as contract §1.3-1.4.

Tokens are JWTs from flask-jwt-extended with an absolute expiry (they never slide) and the
user's `token_version`, so a password change or a deactivation cuts every older token off.
"""
import functools
import secrets
from datetime import timedelta

import jwt as pyjwt
from flask import current_app, g, request, session
from flask_jwt_extended import create_access_token, decode_token
from sqlalchemy.orm import joinedload

from . import messages as M
from .errors import forbidden
from .extensions import db
from .models import User

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "X-CSRFToken"


def issue_token(user):
    """A new token for `user` and its lifetime in seconds."""
    ttl = current_app.config["TOKEN_EXPIRED_AFTER_SECONDS"]
    token = create_access_token(identity=str(user.id), additional_claims={"tv": user.token_version},
                                expires_delta=timedelta(seconds=ttl))
    return token, ttl


def _bearer_token():
    """The token from `Authorization: Bearer …`, None when the header is not ours."""
    header = request.headers.get("Authorization", "")
    parts = header.split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) == 1:
        raise forbidden(M.TOKEN_HEADER_EMPTY)
    if len(parts) > 2:
        raise forbidden(M.TOKEN_HEADER_SPACES)
    return parts[1]


def _user_from_token(token):
    try:
        claims = decode_token(token)
    except pyjwt.ExpiredSignatureError:
        raise forbidden(M.TOKEN_EXPIRED)
    except Exception:  # forged, malformed, wrong algorithm, wrong key
        raise forbidden(M.INVALID_TOKEN)
    try:
        # The agent profile comes in the same query: agent endpoints read it on every request.
        user = db.session.get(User, int(claims["sub"]), options=[joinedload(User.agent)])
    except (KeyError, TypeError, ValueError):
        user = None
    if user is None or claims.get("tv") != user.token_version:
        raise forbidden(M.INVALID_TOKEN)
    if not user.is_active:
        raise forbidden(M.USER_INACTIVE)
    return user


def _user_from_session():
    uid = session.get("uid")
    if uid is None:
        return None
    user = db.session.get(User, uid)
    if user is None or not user.is_active or session.get("tv") != user.token_version:
        session.clear()
        return None
    if request.method not in SAFE_METHODS:
        expected = session.get("csrf")
        sent = request.headers.get(CSRF_HEADER, "")
        if not expected or not secrets.compare_digest(sent, expected):
            raise forbidden(M.CSRF_FAILED)
    return user


def authenticate():
    """The calling user, or a 403 with the contract's detail."""
    token = _bearer_token()
    user = _user_from_token(token) if token is not None else _user_from_session()
    if user is None:
        raise forbidden(M.NO_CREDENTIALS)
    return user


def login_required(*roles):
    """Authenticate, then require one of `roles` (any role when none are given)."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            g.user = authenticate()
            if roles and g.user.role not in roles:
                raise forbidden(M.NO_PERMISSION)
            return view(*args, **kwargs)
        wrapper._oml_roles = roles
        return wrapper
    return decorator


def start_session(response, user):
    """Log `user` into a web session and hand out the CSRF cookie its forms echo."""
    session.clear()
    session["uid"] = user.id
    session["tv"] = user.token_version
    session["csrf"] = secrets.token_urlsafe(32)
    set_csrf_cookie(response, session["csrf"])


def csrf_token():
    """The CSRF value for the current session (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def set_csrf_cookie(response, value):
    cfg = current_app.config
    # Readable by the page's scripts (they copy it into X-CSRFToken), like Django's.
    from .app import cookie_secure
    response.set_cookie(CSRF_COOKIE, value, samesite=cfg["SESSION_COOKIE_SAMESITE"],
                        secure=cookie_secure(), httponly=False)


AGENT = ("Agente",)
ALL_ROLES = ("Administrador", "Gerente", "Supervisor", "Referente", "Agente")
CONTACT_WRITERS = ("Administrador", "Gerente", "Supervisor", "Agente")
