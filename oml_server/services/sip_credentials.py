"""Ephemeral SIP credentials for an agent's phone (contract §2.9).

`sip_user = "<expiry unix time>:<extension>"` and `sip_password = base64(HMAC-SHA1(secret,
sip_user))`: the TURN-style scheme a SIP proxy can check without a database. The engine also
pushes them to Asterisk (`telephony.credentials_issued`) so a plain PJSIP endpoint accepts
them. They are stored first: while Asterisk is unreachable the backend answers them anyway
(as OMniLeads does, from the HMAC alone) and the engine pushes the stored ones when Asterisk
is back (`SipAccounts.push_all` at every (re)connect). A push Asterisk refuses is an error,
and the stored credentials go back to what they were.
"""
import base64
import hashlib
import hmac
import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..models import SupervisorProfile
from . import telephony

log = logging.getLogger(__name__)


class CredentialsNotIssued(Exception):
    """Answered as "Error creating sip password"."""


def sip_password(secret, sip_user):
    digest = hmac.new(secret.encode("utf-8"), sip_user.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def issue(agent, secret, ttl, webrtc=False):
    """New credentials for `agent` (an AgentProfile, or a supervisor's SupervisorProfile: same
    columns): (sip_user, sip_password). Raises CredentialsNotIssued.

    `webrtc`: the phone asking is a browser; the engine pushes the endpoint with WebRTC
    settings (kept on the agent, so a restarted Asterisk gets them again)."""
    if not secret or not agent.sip_extension or ttl is None or int(ttl) <= 0:
        log.error("cannot issue SIP credentials: SIP_SECRET_KEY, EPHEMERAL_USER_TTL or the "
                  "agent's extension is not set (agent %s)", agent.id)
        raise CredentialsNotIssued()
    expires_at = int(time.time()) + int(ttl)
    user = f"{expires_at}:{agent.sip_extension}"
    password = sip_password(secret, user)
    agent.sip_webrtc = bool(webrtc)  # read by the push below; committed with the credentials
    previous = (agent.sip_username, agent.sip_expires_at)
    _store(agent, user, expires_at)
    try:
        if isinstance(agent, SupervisorProfile):
            telephony.supervisor_credentials_issued(agent.id, user, password)
        else:
            telephony.credentials_issued(agent.id, user, password)
    except Exception:
        log.warning("SIP credentials of agent %s refused by Asterisk", agent.id, exc_info=True)
        _store(agent, *previous)
        raise CredentialsNotIssued()
    return user, password


def _store(agent, sip_user, expires_at):
    try:
        agent.sip_username, agent.sip_expires_at = sip_user, expires_at
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("SIP credentials of agent %s could not be stored", agent.id, exc_info=True)
        raise CredentialsNotIssued()
