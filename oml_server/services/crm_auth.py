"""An external site authentication's token: fetched once, kept for its lifetime in the row
(so every process and a restart reuse it), fetched again when it expires or the CRM answers 401.

OMniLeads' flow: POST {"username", "password"} as JSON to the authentication's url, read
`campo_token` from the JSON answer; the lifetime is `duracion` seconds, or when that is 0 the
answer's `campo_duracion` field.
"""
from datetime import timedelta

import gevent.lock
import requests
from flask import current_app
from sqlalchemy import update

from oml_server.extensions import db
from oml_server.models import ExternalSiteAuthentication, utcnow

from .crm_request import aware

EARLY_SECONDS = 5          # refetch a little before the CRM would refuse it
_locks = {}                # one fetch at a time per authentication in this process


class TokenUnavailable(Exception):
    """The token could not be fetched (a retryable failure of the delivery)."""


def fetch(auth, timeout=None):
    """(token, lifetime seconds) from the CRM; raises TokenUnavailable."""
    timeout = timeout or current_app.config["CRM_TIMEOUT_SECONDS"]
    try:
        answer = requests.post(auth.url, json={"username": auth.username, "password": auth.password},
                               timeout=timeout, verify=auth.ssl_estricto)
    except requests.RequestException as exc:
        raise TokenUnavailable(f"token request failed: {exc.__class__.__name__}: {exc}")
    if answer.status_code >= 300:
        raise TokenUnavailable(f"token request answered {answer.status_code}")
    try:
        data = answer.json()
        token = data[auth.campo_token or "token"]
        lifetime = auth.duracion or int(data.get(auth.campo_duracion or "", 0) or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TokenUnavailable(f"token answer has no {auth.campo_token!r}")
    if not isinstance(token, str) or not token:
        raise TokenUnavailable(f"token answer has no {auth.campo_token!r}")
    return token, lifetime


def token(auth_id):
    """A valid token for the authentication, fetching one only when the stored one expired."""
    lock = _locks.setdefault(auth_id, gevent.lock.Semaphore())
    with lock:
        auth = db.session.get(ExternalSiteAuthentication, auth_id)
        db.session.refresh(auth)   # another process may have fetched one meanwhile
        if auth.token and aware(auth.token_expires_at) and aware(auth.token_expires_at) > utcnow():
            current = auth.token
            db.session.commit()
            return current
        db.session.commit()   # no transaction held across the CRM request
        value, lifetime = fetch(auth)
        expires = utcnow() + timedelta(seconds=max(lifetime - EARLY_SECONDS, 1)) if lifetime \
            else utcnow() + timedelta(days=3650)   # no lifetime given: until a 401 says otherwise
        db.session.execute(update(ExternalSiteAuthentication)
                           .where(ExternalSiteAuthentication.id == auth_id)
                           .values(token=value, token_expires_at=expires))
        db.session.commit()
        return value


def forget(auth_id, value):
    """The CRM refused `value` (401): drop it unless another fetch replaced it already."""
    db.session.execute(update(ExternalSiteAuthentication)
                       .where(ExternalSiteAuthentication.id == auth_id,
                              ExternalSiteAuthentication.token == value)
                       .values(token=None, token_expires_at=None))
    db.session.commit()
