"""Agents' SIP accounts in Asterisk, pushed through ARI's dynamic configuration.

Nobody edits pjsip.conf to add an agent: every active agent is an endpoint `<extension>` with
an aor and an auth `<extension>` whose digest username is the ephemeral `<expiry>:<extension>`
from `GET /api/v1/sip/credentials/agent/` and whose password is that scheme's HMAC. The
previous credentials stay valid in `<extension>-prev` until they expire, so a second browser
tab asking for credentials does not log the first phone out. Expired ones are replaced by a
random secret (Asterisk never checks the expiry itself). Memory-backed objects vanish when
Asterisk restarts: `push_all` runs after every restart.

Supervisors' phones (`supervisors`, provisioning `supervisor.sip_extension`) are pushed the
same way: they ring for spy, whisper, barge and take-call.

An agent whose phone is the browser console (`agents.sip_webrtc`, set when the console asks
for credentials with `?webrtc=1`) gets the endpoint settings WebRTC needs (Asterisk 16's
`webrtc=yes`, spelled out so that switching back to a plain SIP phone resets each of them).
"""
import base64
import hashlib
import hmac
import logging
import secrets
import time

from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import AgentProfile, SupervisorProfile

from .ari_client import AriError, AriNotFound

log = logging.getLogger(__name__)


def password_for(sip_user, key):
    digest = hmac.new(key.encode(), sip_user.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def expiry_of(sip_user):
    try:
        return int(str(sip_user).split(":", 1)[0])
    except (TypeError, ValueError):
        return 0


# What Asterisk 16's `webrtc=yes` implies, with its certificate generated per DTLS session (no
# key files to ship to every Asterisk), and the plain-SIP values that undo each of them.
WEBRTC_ENDPOINT = {
    "use_avpf": "yes", "media_encryption": "dtls", "dtls_verify": "fingerprint",
    "dtls_setup": "actpass", "dtls_auto_generate_cert": "yes", "ice_support": "yes",
    "media_use_received_transport": "yes", "rtcp_mux": "yes"}
PLAIN_ENDPOINT = {
    "use_avpf": "no", "media_encryption": "no", "ice_support": "no",
    "media_use_received_transport": "no", "rtcp_mux": "no"}


class SipAccounts:
    def __init__(self, ari, settings):
        self.ari = ari
        self.key = settings["SIP_SECRET_KEY"]
        self.context = settings.get("AGENT_CONTEXT", "agents")
        # Always pushed, 0 included: an endpoint pushed again must lose an earlier value.
        self.rtp_timeouts = {
            field: str(max(0, int(settings.get(name, default))))
            for field, name, default in (("rtp_timeout", "PHONE_RTP_TIMEOUT", 60),
                                         ("rtp_timeout_hold", "PHONE_RTP_TIMEOUT_HOLD", 600))}

    def _auth(self, auth_id, username, password):
        self.ari.dynamic_config_put("auth", auth_id, {
            "auth_type": "userpass", "username": username, "password": password})

    def _locked_auth(self, auth_id, extension):
        """An auth nobody knows the password of: the account exists but cannot register."""
        self._auth(auth_id, f"locked:{extension}", secrets.token_urlsafe(24))

    def push(self, agent, now=None):
        """Create or refresh one agent's auth, aor and endpoint (in that order: an endpoint
        pushed before its auth answers REGISTER with 500)."""
        now = now or time.time()
        ext = agent.sip_extension
        if agent.sip_username and (agent.sip_expires_at or 0) > now:
            self._auth(ext, agent.sip_username, password_for(agent.sip_username, self.key))
        else:
            self._locked_auth(ext, ext)
        self._ensure_prev(ext)
        self.ari.dynamic_config_put("aor", ext, {"max_contacts": 1, "remove_existing": "yes"})
        self._endpoint(agent)

    def _endpoint(self, agent):
        ext = agent.sip_extension
        name = " ".join(p for p in (agent.user.first_name, agent.user.last_name) if p) or agent.user.username
        fields = {
            "context": self.context, "disallow": "all", "allow": "ulaw,alaw",
            "auth": f"{ext},{ext}-prev", "aors": ext, "identify_by": "username",
            "direct_media": "no", "rtp_symmetric": "yes", "force_rport": "yes",
            "rewrite_contact": "no", "callerid": f'"{name}" <{ext}>', **self.rtp_timeouts}
        fields.update(WEBRTC_ENDPOINT if agent.sip_webrtc else PLAIN_ENDPOINT)
        self.ari.dynamic_config_put("endpoint", ext, fields)

    def _ensure_prev(self, ext):
        try:
            fields = self.ari.dynamic_config_get("auth", f"{ext}-prev")
            username = next((f["value"] for f in fields if f["attribute"] == "username"), "")
            if expiry_of(username) > time.time():
                return
        except AriNotFound:
            pass
        self._locked_auth(f"{ext}-prev", ext)

    def remove(self, extension):
        for kind, obj_id in (("endpoint", extension), ("aor", extension), ("auth", extension),
                             ("auth", f"{extension}-prev")):
            try:
                self.ari.dynamic_config_delete(kind, obj_id)
            except AriNotFound:
                pass

    def credentials_issued(self, agent, sip_user, sip_password):
        """New credentials: the old ones move to the `-prev` slot, the new ones take effect on
        the phone's next REGISTER."""
        try:
            fields = self.ari.dynamic_config_get("auth", agent.sip_extension)
            previous_user = next((f["value"] for f in fields if f["attribute"] == "username"), "")
        except AriNotFound:
            self.push(agent)  # first credentials since the account was created or Asterisk restarted
            previous_user = ""
        if previous_user and previous_user != sip_user and expiry_of(previous_user) > time.time():
            self._auth(f"{agent.sip_extension}-prev", previous_user,
                       password_for(previous_user, self.key))
        self._auth(agent.sip_extension, sip_user, sip_password)
        if previous_user:  # (a first push above already wrote the endpoint)
            self._endpoint(agent)  # the phone may have changed: browser (WebRTC) or plain SIP

    def push_all(self):
        """Every active agent and supervisor phone in, every deactivated one out. Returns
        (pushed, removed)."""
        pushed = removed = 0
        now = time.time()
        for agent in _phones(select(AgentProfile), select(SupervisorProfile)):
            try:
                if agent.user.is_active:
                    self.push(agent, now)
                    pushed += 1
                else:
                    self.remove(agent.sip_extension)
                    removed += 1
            except AriError as exc:
                log.warning("SIP account %s not pushed: %s", agent.sip_extension, exc)
        return pushed, removed

    def rotate_expired(self):
        """Lock accounts whose credentials expired; returns how many were locked."""
        now = int(time.time())
        expired = _phones(*(select(model).where(model.sip_expires_at.is_not(None),
                                                model.sip_expires_at <= now)
                            for model in (AgentProfile, SupervisorProfile)))
        for agent in expired:
            try:
                self._locked_auth(agent.sip_extension, agent.sip_extension)
                self._ensure_prev(agent.sip_extension)
            except AriError as exc:
                log.warning("SIP account %s not rotated: %s", agent.sip_extension, exc)
                continue
            agent.sip_username = None
            agent.sip_expires_at = None
        db.session.commit()
        return len(expired)


def _phones(*queries):
    """Agents' and supervisors' phones (SupervisorProfile has an agent's SIP columns)."""
    return [phone for query in queries for phone in db.session.scalars(query).all()]
