"""The one door from the REST layer to the telephony engine.

The REST layer never talks to Asterisk itself: it writes rows, then calls one of the functions
below, which delegate to a pluggable *backend* (`set_backend`). The ARI engine installs its own
backend at start-up; tests install fakes. With no engine the default backend answers as a
server without calls: click-to-call is refused with a clear reason, nothing is mirrored.

The backend contract (duck-typed; every method may raise):

* `place_click_to_call(call, known)` — start the committed `Call` row (state `requested`): ring
  the agent, and so on (contract §3). `known` (KnownFacts) carries what the REST layer already
  read (the agent's extension, the campaign's type and recording flag; None where it did not).
  Return when the call is under way. Raise `CallNotPlaced(reason)`
  when it cannot be placed; the caller then marks the row failed. The backend may set
  attributes on `call` (channel ids…); the caller commits them after the hand-off returns.
* `hangup_call(call)` — hang up the agent's live call. The backend finalises the row (directly
  or when Asterisk reports the channels gone).
* `presence_changed(agent_id)` — mirror the agent's *current* presence row into Asterisk.
  Return the device state written (a short string, stored in `AgentSession.mirrored_state`) or
  None when nothing was written. Failures are logged by the caller, never fatal: the engine
  re-mirrors every row whose `mirrored_state` is NULL when it (re)connects.
* `credentials_issued(agent_id, sip_user, sip_password)` — make freshly issued (and already
  stored) ephemeral SIP credentials usable (push them to Asterisk). Return without pushing
  while Asterisk is unreachable (they are pushed at the next connect); raising makes the
  credentials request fail.
* `call_command(call, command, args)` — hand an in-call command to the engine that runs the
  live `call`; return how many engines took it (1 or 0).
* `status()` — "ok", "connecting", "down" or "disabled", for the health endpoint.
* `supervisor_credentials_issued(supervisor_id, sip_user, sip_password)` (optional) — the
  same for a supervisor's phone (a `SupervisorProfile` id).
* `supervise(call, phone, mode)` (optional) — ring the supervisor's `phone` (a
  SupervisorProfile) into the bridged `call` as `mode`: spy, whisper, barge or take_call.
  Raise `CallNotPlaced(reason)` when it cannot. A backend without it cannot listen in.
"""
import logging
from typing import NamedTuple, Optional

from .. import messages as M

log = logging.getLogger(__name__)


class CallNotPlaced(Exception):
    """The engine could not place a call. `reason` is shown to the client (a contract message
    or plain text) in the `errors` list of "Error when executing the call"."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class NoEngine:
    """The backend of a server without telephony (ARI disabled, or the engine not started)."""

    def place_click_to_call(self, call, known):
        raise CallNotPlaced(M.TELEPHONY_NOT_CONFIGURED)

    def hangup_call(self, call):
        # No engine means no channels: nobody else will ever end this row, so end it here.
        from .calls import finish
        finish(call, "ended", reason="Hung up by the agent.")

    def presence_changed(self, agent_id):
        return None  # nothing mirrored: the row stays "still to write" for a future engine

    def credentials_issued(self, agent_id, sip_user, sip_password):
        return None  # a SIP proxy checks ephemeral credentials itself; nothing to push

    def call_command(self, call, command, args):
        return 0  # no engine subscribed: nothing happens (contract-calls §0)

    def status(self):
        return "disabled"


_backend = NoEngine()


def set_backend(backend):
    """Install `backend` (None: back to no engine); returns the previous one."""
    global _backend
    previous = _backend
    _backend = backend if backend is not None else NoEngine()
    return previous


def get_backend():
    return _backend


class KnownFacts(NamedTuple):
    """What makeCall's checks already read and the engine needs to ring the agent (None: not
    known, the engine reads it): the agent's extension, the campaign's type and whether it
    records."""
    extension: Optional[str] = None
    campaign_type: Optional[str] = None
    recorded: Optional[bool] = None


def place_click_to_call(call, known=None):
    return _backend.place_click_to_call(call, known or KnownFacts())


def hangup_call(call):
    return _backend.hangup_call(call)


def call_command(call, command, args):
    """Hand an in-call command (hold, transfer, hangup-leg…) to the engine running `call`:
    the number of engines that took it (1, or 0 when none is connected)."""
    return _backend.call_command(call, command, args)


def presence_changed(agent_id):
    return _backend.presence_changed(agent_id)


def credentials_issued(agent_id, sip_user, sip_password):
    return _backend.credentials_issued(agent_id, sip_user, sip_password)


def supervise(call, phone, mode):
    method = getattr(_backend, "supervise", None)
    if method is None:
        raise CallNotPlaced(M.SUPERVISION_UNAVAILABLE)
    return method(call, phone, mode)


def supervisor_credentials_issued(supervisor_id, sip_user, sip_password):
    """As credentials_issued, for a supervisor's phone (`SupervisorProfile` id); a backend
    without it has nothing to push (a SIP proxy checks the HMAC itself)."""
    method = getattr(_backend, "supervisor_credentials_issued", None)
    return method(supervisor_id, sip_user, sip_password) if method is not None else None


def problems():
    """What the engine found missing in Asterisk (modules, contexts); [] when nothing is known."""
    try:
        return list(getattr(_backend, "problems", lambda: [])())
    except Exception:
        log.warning("telephony problems unreadable", exc_info=True)
        return []


def status():
    """The engine's state for the health endpoint; "error" when even asking fails."""
    try:
        return str(_backend.status())
    except Exception:
        log.warning("telephony status failed", exc_info=True)
        return "error"
