"""Sends one claimed delivery and settles it: 2xx delivered; a connection error, a timeout or
a 5xx retried later; any other 4xx failed for good (a 401 from a site with an authentication
first gets one more try with a fresh token).

Headers: `X-OML-Delivery` (the delivery id, the same on every retry), `X-OML-Signature: sha256=<hex HMAC-SHA256 of the body>` when
the destination has a secret, `Authorization: Bearer <token>` for a site with an authentication.
"""
import hashlib
import hmac

import requests
from flask import current_app
from requests.adapters import HTTPAdapter

from . import crm_auth, deliveries

_session = None


def http():
    """One pooled HTTP session per process (keep-alive to each CRM)."""
    global _session
    if _session is None:
        _session = requests.Session()
        adapter = HTTPAdapter(pool_connections=64, pool_maxsize=64)
        _session.mount("http://", adapter)
        _session.mount("https://", adapter)
    return _session


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_for(row):
    headers = {"X-OML-Delivery": str(row.id), "User-Agent": "oml-server"}
    if row.content_type:
        headers["Content-Type"] = row.content_type
    if row.secret:
        headers["X-OML-Signature"] = signature(row.secret, row.body or b"")
    return headers


def _attempt(row, token=None):
    headers = headers_for(row)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http().request(row.method, row.url, data=row.body or None, headers=headers,
                          timeout=current_app.config["CRM_TIMEOUT_SECONDS"],
                          verify=row.verify_tls, allow_redirects=False)


def deliver(row):
    """Send (with the token flow); the outcome as settle() takes it: (status, error, retry)."""
    token = None
    try:
        if row.authentication_id:
            token = crm_auth.token(row.authentication_id)
        answer = _attempt(row, token)
        if answer.status_code == 401 and token:
            crm_auth.forget(row.authentication_id, token)
            token = crm_auth.token(row.authentication_id)
            answer = _attempt(row, token)
    except crm_auth.TokenUnavailable as exc:
        return None, str(exc), True
    except requests.RequestException as exc:
        return None, f"{exc.__class__.__name__}: {exc}"[:500], True
    status = answer.status_code
    answer.close()
    if 200 <= status < 300:
        return status, None, False
    return status, f"HTTP {status}", status >= 500


def send(row):
    """Send and settle; returns the row's new state."""
    return deliveries.settle(row, *deliver(row))
