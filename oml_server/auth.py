"""Authentication (Bearer token or web session + CSRF) and role checks, as contract §1.3-1.4.

Tokens are JWTs from flask-jwt-extended with an absolute expiry (they never slide) and the
user's `token_version`, so a password change or a deactivation cuts every older token off.
"""
import functools
import hmac
import secrets
import time
from datetime import timedelta

import jwt as pyjwt
from flask import current_app, g, request, session
from flask_jwt_extended import create_access_token
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from . import messages as M
from .database import Prepared, run, statements_commit_alone
from .errors import forbidden
from .extensions import db
from .models import AgentProfile, User

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


class TokenUser:
    """The caller of a Bearer request (`g.user`): the few columns every request reads, loaded
    with one Core select instead of an ORM object and its agent (measured by
    bench/cpu_per_request.py: the ORM load was the largest single cost of the token check).

    `agent` is the ORM AgentProfile, loaded on first use (the hot paths read `agent_id` only);
    any other attribute (username, names…) comes from the ORM User, loaded on first use.
    """
    __slots__ = ("id", "role", "is_active", "token_version", "agent_id", "_user", "_agent")

    def __init__(self, id, role, is_active, token_version, agent_id):
        self.id, self.role, self.is_active = id, role, is_active
        self.token_version, self.agent_id = token_version, agent_id
        self._user = self._agent = None

    @property
    def agent(self):
        if self.agent_id is None:
            return None
        if self._agent is None:
            self._agent = db.session.get(AgentProfile, self.agent_id)
        return self._agent

    @property
    def is_agent(self):
        return self.role == "Agente"

    def __getattr__(self, name):  # only for attributes not above
        if name.startswith("__"):
            raise AttributeError(name)
        if self._user is None:
            self._user = db.session.get(User, self.id)
        return getattr(self._user, name)


# Built once: SQLAlchemy caches the compiled SQL, but building the statement costs too.
_USER_BY_ID = Prepared(select(User.id, User.role, User.is_active, User.token_version,
                               AgentProfile.id)
                        .outerjoin(AgentProfile, AgentProfile.user_id == User.id)
                        .where(User.id == bindparam("uid")))


_DECODE_SETTINGS = ("JWT_SECRET_KEY", "JWT_DECODE_ALGORITHMS", "JWT_ALGORITHM",
                    "JWT_DECODE_AUDIENCE", "JWT_DECODE_ISSUER", "JWT_DECODE_LEEWAY",
                    "JWT_VERIFY_SUB", "JWT_IDENTITY_CLAIM")


def _decode_options(app):
    """What flask-jwt-extended's decode_token passes to PyJWT, rebuilt only when one of the
    settings it reads changes (and with it the cache of verified tokens).

    decode_token decodes every token twice (once unverified, to choose the key) and reads a
    dozen config values; one PyJWT call with these arguments accepts and refuses the same
    tokens (signature, algorithm, exp/nbf/iat with the leeway, the identity claim)."""
    cfg = app.config
    key = tuple(_hashable(cfg.get(name)) for name in _DECODE_SETTINGS)
    cached = app.extensions.get("oml_jwt_decode")
    if cached is None or cached[0] != key:
        audience = cfg.get("JWT_DECODE_AUDIENCE")
        kwargs = {"key": cfg["JWT_SECRET_KEY"],
                  "algorithms": list(cfg.get("JWT_DECODE_ALGORITHMS") or [cfg["JWT_ALGORITHM"]]),
                  "audience": audience, "issuer": cfg.get("JWT_DECODE_ISSUER"),
                  "leeway": cfg.get("JWT_DECODE_LEEWAY") or 0,
                  "options": {"verify_aud": audience is not None,
                              "verify_sub": cfg.get("JWT_VERIFY_SUB", True)}}
        cached = (key, kwargs, cfg.get("JWT_IDENTITY_CLAIM") or "sub", {})
        app.extensions["oml_jwt_decode"] = cached
    return cached[1], cached[2], cached[3]


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


VERIFIED_CACHE_SIZE = 10000


def _seconds(leeway):
    return leeway.total_seconds() if isinstance(leeway, timedelta) else leeway


def _claims(token, kwargs, verified):
    """The token's claims, verified by PyJWT the first time a token is seen.

    A client sends the same token on every request for hours; verifying its signature and
    parsing it again each time cost a fifth of a request's CPU. Only tokens that passed every
    check are remembered (per signing key), and only their expiry can change with time, so it
    is checked again on every use, with the same leeway; nbf and iat could only have failed
    the first time. The cache is emptied when full (a bound on memory, not an LRU).
    """
    hit = verified.get(token)
    if hit is not None:
        claims, exp = hit
        if exp is None or time.time() < exp + _seconds(kwargs["leeway"]):
            return claims
        raise pyjwt.ExpiredSignatureError("Signature has expired")
    claims = pyjwt.decode(token, **kwargs)
    exp = claims.get("exp")
    if exp is None or isinstance(exp, (int, float)):  # PyJWT has checked it is a number
        if len(verified) >= VERIFIED_CACHE_SIZE:
            verified.clear()
        verified[token] = (claims, None if exp is None else int(exp))
    return claims


def _user_from_token(token, orm=False):
    kwargs, identity_claim, verified = _decode_options(current_app)
    try:
        claims = _claims(token, kwargs, verified)
    except pyjwt.ExpiredSignatureError:
        raise forbidden(M.TOKEN_EXPIRED)
    except Exception:  # forged, malformed, wrong algorithm, wrong key
        raise forbidden(M.INVALID_TOKEN)
    try:
        uid = int(claims[identity_claim])
    except (KeyError, TypeError, ValueError):
        raise forbidden(M.INVALID_TOKEN)
    if orm:
        # The ORM User with its agent profile in one query, for views whose services use the
        # objects themselves (the agent's SIP fields, the calls' agent and user rows).
        user = db.session.get(User, uid, options=[joinedload(User.agent)])
        row = None if user is None else (user.id, user.role, user.is_active, user.token_version)
    else:
        # The session's connection: the same transaction the request's services then use.
        row = run(_USER_BY_ID, {"uid": uid}).first()
    if row is None or claims.get("tv") != row[3]:
        raise forbidden(M.INVALID_TOKEN)
    if not row[2]:
        raise forbidden(M.USER_INACTIVE)
    return user if orm else TokenUser(*row)


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
        if not tokens_match(sent, expected):
            raise forbidden(M.CSRF_FAILED)
    return user


def authenticate(orm=False):
    """The calling user, or a 403 with the contract's detail: a TokenUser for a Bearer token,
    unless `orm` asks for the ORM User (with its agent loaded); the ORM User for a web session."""
    token = _bearer_token()
    user = _user_from_token(token, orm) if token is not None else _user_from_session()
    if user is None:
        raise forbidden(M.NO_CREDENTIALS)
    return user


def login_required(*roles, orm_user=False, single_write=False):
    """Authenticate, then require one of `roles` (any role when none are given).

    `g.user` is a TokenUser (id, role, is_active, token_version, agent_id; the rest loaded on
    first use) unless `orm_user`: views whose services work on the ORM user and agent profile
    ask for them, loaded in one query as part of the token check.

    `single_write`: the view writes with at most one statement, so on PostgreSQL its
    statements, the token check included, run without a transaction block (two round trips
    fewer: database.statements_commit_alone)."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if single_write:
                statements_commit_alone(db.session)
            g.user = authenticate(orm_user)
            if roles and g.user.role not in roles:
                raise forbidden(M.NO_PERMISSION)
            return view(*args, **kwargs)
        wrapper._oml_roles = roles
        return wrapper
    return decorator


def tokens_match(sent, expected):
    """Whether a CSRF token sent matches the expected one: both present, compared in constant
    time (as bytes: compare_digest refuses non-ASCII text, and a header may carry some)."""
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


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
