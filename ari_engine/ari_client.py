"""A small synchronous client for the Asterisk REST Interface (ARI).

Why our own: the PyPI ``ari`` package (ari-py) is Python-2 code and the maintained clients are
asyncio-only and lack device-state and subscription calls. This module is deliberately thin:
one method per ARI resource we use, parsed JSON back, one exception family. It is synchronous
and cooperative under gevent (``requests`` and ``websocket-client`` both use the patched socket
module, so monkey-patch before importing this module).

* REST: one ``requests.Session`` with ``trust_env = False`` (no proxy/netrc lookups per request:
  it halves client CPU per call) and a connection pool sized to the number of concurrent
  greenlets allowed to talk to ARI (blocking when all its connections are busy).
* Events: :class:`AriEventStream` reads ``/ari/events`` and pings the server every few seconds,
  because a websocket can die silently (no FIN) and we must notice and reconcile.
"""
from __future__ import annotations

import json
import re
import time
import urllib.parse
from typing import Any, Iterable, Iterator, Mapping, Optional

import requests
from requests.adapters import HTTPAdapter
from requests.auth import _basic_auth_str
from requests.hooks import default_hooks
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ProtocolError as _ConnectionLost

# Requests that may be sent again when a kept-alive connection turns out to be closed by
# Asterisk ("Remote end closed connection without response"): they change nothing twice.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

def _connection_was_reused(exc):
    """True when a ConnectionError is the peer closing a kept-alive connection (not a refusal)."""
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, _ConnectionLost) or "Remote end closed" in str(exc)


__all__ = ["AriClient", "AriEventStream", "AriError", "AriNotFound", "AriUnavailable"]


class AriError(Exception):
    """ARI answered with an error status. ``status`` is the HTTP status, ``message`` ARI's text."""

    def __init__(self, status: int, message: str):
        super().__init__(f"ARI {status}: {message}")
        self.status = status
        self.message = message


class AriNotFound(AriError):
    """404: the channel/bridge/object is gone. Cleanup code treats this as done."""


class AriUnavailable(AriError):
    """Asterisk cannot be reached (connection refused/reset, timeout, websocket dead)."""

    def __init__(self, message: str):
        super().__init__(0, message)


def _drop_none(params: Mapping[str, Any]) -> dict:
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[key] = value
    return out


class AriClient:
    """Synchronous ARI REST client.

    ``base_url`` is the ARI root, e.g. ``http://127.0.0.1:8088/ari``. ``app`` is the default
    Stasis application for originate/subscribe. ``timeout`` is (connect, read) seconds: ARI
    answers in milliseconds, so a slow answer means a sick Asterisk and we would rather fail.
    """

    def __init__(self, base_url: str, user: str, password: str, app: str, pool_size: int = 10,
                 timeout: tuple[float, float] = (2.0, 10.0)):
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.password = password
        self.app = app
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.auth = (user, password)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=0,
                              pool_block=True)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._adapter = adapter
        # What Session.request would add to every request, worked out once (see _send).
        self._headers = {**self.session.headers, "Authorization": _basic_auth_str(user, password)}

    # -- plumbing ------------------------------------------------------------------------------

    def request(self, method: str, path: str, params: Optional[Mapping[str, Any]] = None,
                json_body: Any = None) -> Any:
        """Do one ARI call; return parsed JSON (or None for empty bodies); raise AriError."""
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(_drop_none(params))
        try:
            try:
                resp = self._send(method, url, json_body)
            except requests.ConnectionError as exc:
                if method not in _IDEMPOTENT or not _connection_was_reused(exc):
                    raise
                # Asterisk closed a kept-alive connection under the request: once more, on a
                # fresh connection (the failed one was discarded). Never after a timeout.
                resp = self._send(method, url, json_body)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise AriUnavailable(f"{method} {path}: {exc}") from exc
        if resp.status_code >= 400:
            message = resp.text
            try:
                parsed = resp.json()
                if isinstance(parsed, dict):
                    message = parsed.get("message") or parsed.get("error") or message
            except ValueError:
                pass
            cls = AriNotFound if resp.status_code == 404 else AriError
            raise cls(resp.status_code, message)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def _send(self, method: str, url: str, json_body: Any) -> requests.Response:
        """One request through the session's adapter (requests' connection pool), prepared
        here: Session.request merges settings, hooks, cookies and proxies and re-parses the URL
        on every call, which cost about a third of the client's CPU per ARI request; none of it
        changes between requests to one Asterisk (no cookies, redirects or proxies; same
        auth). The headers are the ones Session.request sends."""
        prepared = PreparedRequest()
        prepared.method = method
        prepared.url = url
        headers = CaseInsensitiveDict(self._headers)
        if json_body is not None:
            prepared.body = json.dumps(json_body).encode("utf-8")
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(prepared.body))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        prepared.headers = headers
        prepared.hooks = default_hooks()
        resp = self._adapter.send(prepared, timeout=self.timeout)
        resp.content  # read it all now: the connection goes back to the pool (Session.send)
        return resp

    def close(self) -> None:
        self.session.close()

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(str(value), safe="")

    # -- asterisk ------------------------------------------------------------------------------

    def asterisk_info(self, only: Optional[str] = None) -> dict:
        """``only='status'`` gives startup_time: when it changes Asterisk restarted (push again)."""
        return self.request("GET", "/asterisk/info", {"only": only})

    def get_global_var(self, variable: str) -> dict:
        return self.request("GET", "/asterisk/variable", {"variable": variable})

    def set_global_var(self, variable: str, value: str) -> None:
        self.request("POST", "/asterisk/variable", {"variable": variable, "value": value})

    def dynamic_config_put(self, obj_type: str, obj_id: str, fields: Mapping[str, Any],
                           config_class: str = "res_pjsip") -> list:
        """Create/update a PJSIP object at run time (order: auth, aor, endpoint).

        A PUT on an existing object changes only the fields sent.
        """
        body = {"fields": [{"attribute": k, "value": str(v)} for k, v in fields.items()]}
        return self.request("PUT", f"/asterisk/config/dynamic/{config_class}/{obj_type}/"
                                   f"{self._q(obj_id)}", json_body=body)

    def dynamic_config_get(self, obj_type: str, obj_id: str,
                           config_class: str = "res_pjsip") -> list:
        return self.request("GET", f"/asterisk/config/dynamic/{config_class}/{obj_type}/"
                                   f"{self._q(obj_id)}")

    def dynamic_config_delete(self, obj_type: str, obj_id: str,
                              config_class: str = "res_pjsip") -> None:
        self.request("DELETE", f"/asterisk/config/dynamic/{config_class}/{obj_type}/"
                               f"{self._q(obj_id)}")

    # -- channels ------------------------------------------------------------------------------

    def channels(self) -> list:
        return self.request("GET", "/channels")

    def channel(self, channel_id: str) -> dict:
        return self.request("GET", f"/channels/{self._q(channel_id)}")

    def originate(self, endpoint: str, app: Optional[str] = None, appArgs: Optional[str] = None,
                  channelId: Optional[str] = None, otherChannelId: Optional[str] = None,
                  callerId: Optional[str] = None, timeout: Optional[int] = 30,
                  variables: Optional[Mapping[str, str]] = None, **extra) -> dict:
        """Originate into the Stasis app. Give your own ``channelId`` so events can be matched
        before this call returns. ``timeout`` (s) bounds ringing: an unanswered or dead contact
        only ends (cause 0) when it expires. An unregistered endpoint fails at once with
        500 "Allocation failed": check :meth:`endpoint` first for a clear error."""
        params = {"endpoint": endpoint, "app": app or self.app, "appArgs": appArgs,
                  "channelId": channelId, "otherChannelId": otherChannelId,
                  "callerId": callerId, "timeout": timeout, **extra}
        body = {"variables": dict(variables)} if variables else None
        return self.request("POST", "/channels", params, json_body=body)

    def channel_create(self, endpoint: str, app: Optional[str] = None,
                       appArgs: Optional[str] = None, channelId: Optional[str] = None,
                       otherChannelId: Optional[str] = None,
                       variables: Optional[Mapping[str, str]] = None, **extra) -> dict:
        """Create a channel in Stasis without dialing (early-media flow: add to bridge, dial)."""
        params = {"endpoint": endpoint, "app": app or self.app, "appArgs": appArgs,
                  "channelId": channelId, "otherChannelId": otherChannelId, **extra}
        body = {"variables": dict(variables)} if variables else None
        return self.request("POST", "/channels/create", params, json_body=body)

    def dial(self, channel_id: str, caller: Optional[str] = None,
             timeout: Optional[int] = None) -> None:
        self.request("POST", f"/channels/{self._q(channel_id)}/dial",
                     {"caller": caller, "timeout": timeout})

    def hangup(self, channel_id: str, reason: Optional[str] = None) -> None:
        """``reason``: normal, busy, congestion, no_answer, ... (ARI names, not cause codes)."""
        self.request("DELETE", f"/channels/{self._q(channel_id)}", {"reason": reason})

    def answer(self, channel_id: str) -> None:
        self.request("POST", f"/channels/{self._q(channel_id)}/answer")

    def ring(self, channel_id: str) -> None:
        self.request("POST", f"/channels/{self._q(channel_id)}/ring")

    def ring_stop(self, channel_id: str) -> None:
        self.request("DELETE", f"/channels/{self._q(channel_id)}/ring")

    def channel_var(self, channel_id: str, variable: str) -> dict:
        return self.request("GET", f"/channels/{self._q(channel_id)}/variable",
                            {"variable": variable})

    # -- bridges -------------------------------------------------------------------------------

    def bridges(self) -> list:
        return self.request("GET", "/bridges")

    def bridge(self, bridge_id: str) -> dict:
        return self.request("GET", f"/bridges/{self._q(bridge_id)}")

    def bridge_create(self, bridge_id: Optional[str] = None, type: str = "mixing",
                      name: Optional[str] = None) -> dict:
        if bridge_id:
            return self.request("POST", f"/bridges/{self._q(bridge_id)}",
                                {"type": type, "name": name})
        return self.request("POST", "/bridges", {"type": type, "name": name})

    def bridge_add_channel(self, bridge_id: str, channel_ids, role: Optional[str] = None) -> None:
        """The channel must already be in Stasis (after its StasisStart), else 422."""
        self.request("POST", f"/bridges/{self._q(bridge_id)}/addChannel",
                     {"channel": channel_ids, "role": role})

    def bridge_remove_channel(self, bridge_id: str, channel_ids) -> None:
        self.request("POST", f"/bridges/{self._q(bridge_id)}/removeChannel",
                     {"channel": channel_ids})

    def bridge_destroy(self, bridge_id: str) -> None:
        self.request("DELETE", f"/bridges/{self._q(bridge_id)}")

    def bridge_start_moh(self, bridge_id: str, moh_class: Optional[str] = None) -> None:
        """Needs res_musiconhold (not in the lab's module set)."""
        self.request("POST", f"/bridges/{self._q(bridge_id)}/moh", {"mohClass": moh_class})

    def bridge_stop_moh(self, bridge_id: str) -> None:
        self.request("DELETE", f"/bridges/{self._q(bridge_id)}/moh")

    # -- endpoints -----------------------------------------------------------------------------

    def endpoints(self, tech: Optional[str] = None) -> list:
        return self.request("GET", f"/endpoints/{self._q(tech)}" if tech else "/endpoints")

    def endpoint(self, tech: str, resource: str) -> dict:
        """``state`` is ``online``/``offline`` (REGISTERed contact or not)."""
        return self.request("GET", f"/endpoints/{self._q(tech)}/{self._q(resource)}")

    # -- device states -------------------------------------------------------------------------

    def device_state_put(self, name: str, state: str) -> None:
        """Only ``Stasis:<name>`` is writable (``Custom:`` gives 409); an invalid state a 500."""
        self.request("PUT", f"/deviceStates/{self._q(name)}", {"deviceState": state})

    def device_state_get(self, name: str) -> dict:
        return self.request("GET", f"/deviceStates/{self._q(name)}")

    def device_state_delete(self, name: str) -> None:
        self.request("DELETE", f"/deviceStates/{self._q(name)}")

    def device_states(self) -> list:
        return self.request("GET", "/deviceStates")

    # -- applications --------------------------------------------------------------------------

    def application(self, app: Optional[str] = None) -> dict:
        return self.request("GET", f"/applications/{self._q(app or self.app)}")

    def subscribe(self, event_source, app: Optional[str] = None) -> dict:
        """E.g. ``endpoint:PJSIP/1001``: EndpointStateChange only arrives after this."""
        return self.request("POST", f"/applications/{self._q(app or self.app)}/subscription",
                            {"eventSource": event_source})

    def unsubscribe(self, event_source, app: Optional[str] = None) -> dict:
        return self.request("DELETE", f"/applications/{self._q(app or self.app)}/subscription",
                            {"eventSource": event_source})

    def filter_events(self, disallowed: Iterable[str], app: Optional[str] = None) -> dict:
        """Asterisk stops sending the app these event types (ARI eventFilter, Asterisk 13.26+
        and 16.3+): a frame never sent costs neither side anything."""
        return self.request("PUT", f"/applications/{self._q(app or self.app)}/eventFilter",
                            json_body={"disallowed": [{"type": t} for t in sorted(disallowed)]})


class AriEventStream:
    """Iterate over one Stasis app's events from ``/ari/events``.

    Exactly one reader per app name: a second websocket under the same name silently takes the
    app over (the first stays open and receives nothing). The stream sends a websocket ping
    after ``ping_interval`` s of silence and raises :class:`AriUnavailable` if nothing comes
    back within ``ping_timeout`` s, so a dead connection is noticed in a few seconds; the
    caller then reconnects and reconciles (events are lost while disconnected).

    Usage::

        with AriEventStream(url, user, pw, "omnileads") as events:
            for event in events:
                dispatch(event)
    """

    def __init__(self, base_url: str, user: str, password: str, app: str,
                 subscribe_all: bool = False, ping_interval: float = 2.0,
                 ping_timeout: float = 3.0, connect_timeout: float = 5.0,
                 skip_types: Optional[Iterable[str]] = None, drop_repeats: int = 0):
        """``skip_types``: event types the reader never wants. They are recognised on the raw
        text and dropped before ``json.loads`` (Asterisk sends several per call that nobody
        reads: parsing them was ~5% of the engine's CPU per call).

        ``drop_repeats``: drop a frame identical to one of the last ``drop_repeats`` frames.
        An app subscribed to an endpoint (``endpoint:PJSIP``, for registrations) gets every
        event of a channel of that endpoint twice, once through the channel's subscription
        and once through the endpoint's, byte for byte the same (same snapshot, same
        millisecond timestamp); one copy is enough."""
        base = base_url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[4:]
        query = urllib.parse.urlencode({"app": app, "api_key": f"{user}:{password}",
                                        "subscribeAll": "true" if subscribe_all else "false"})
        self.url = f"{base}/events?{query}"
        self.app = app
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout
        self.ws = None
        self.skipped = 0
        self._skip = _type_matcher(skip_types) if skip_types else None
        self.repeats = 0
        self._window = drop_repeats
        self._recent = {}  # the last frames, oldest first (insertion order)

    def connect(self) -> "AriEventStream":
        import websocket  # websocket-client

        try:
            # skip_utf8_validation: websocket-client checks UTF-8 in pure Python (~9% of the
            # engine's CPU under load, bench/README.md); json.loads rejects bad text anyway.
            self.ws = websocket.create_connection(self.url, timeout=self.connect_timeout,
                                                  enable_multithread=True,
                                                  skip_utf8_validation=True)
        except (OSError, websocket.WebSocketException) as exc:
            raise AriUnavailable(f"events websocket: {exc}") from exc
        self.ws.settimeout(self.ping_interval)
        return self

    def close(self) -> None:
        """Close from any greenlet/thread: send a close frame, then shut the socket down
        without waiting for the reply (the reader may be blocked in recv on the same socket;
        two greenlets reading one socket is an error under gevent). The reader then ends."""
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.send_close()
            except Exception:  # a dead socket fails in many ways; it is being closed anyway
                pass
            try:
                ws.shutdown()
            except Exception:
                pass

    def __enter__(self) -> "AriEventStream":
        if self.ws is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[dict]:
        return self.events()

    def events(self) -> Iterator[dict]:
        """Yield decoded events until the connection closes or dies (then AriUnavailable)."""
        import websocket

        if self.ws is None:
            self.connect()
        ping_sent_at: Optional[float] = None
        while True:
            ws = self.ws
            if ws is None:
                return  # closed by close()
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                if ping_sent_at is None:
                    try:
                        ws.ping()
                    except (OSError, websocket.WebSocketException) as exc:
                        self.close()
                        raise AriUnavailable(f"events websocket ping failed: {exc}") from exc
                    ping_sent_at = now
                elif now - ping_sent_at > self.ping_timeout:
                    self.close()
                    raise AriUnavailable("events websocket: no answer to ping")
                continue
            except (OSError, websocket.WebSocketException, AttributeError) as exc:
                if self.ws is None:
                    return  # closed by close() from another greenlet
                self.close()
                raise AriUnavailable(f"events websocket: {exc}") from exc
            ping_sent_at = None  # any frame proves the connection is alive
            if opcode == websocket.ABNF.OPCODE_TEXT:
                if self._skip is not None and self._skip(data):
                    self.skipped += 1
                    continue
                if self._window and self._repeated(data):
                    self.repeats += 1
                    continue
                yield json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                if self.ws is None:
                    return  # our own close() answered
                self.close()
                raise AriUnavailable("events websocket closed by Asterisk")


    def _repeated(self, data) -> bool:
        recent = self._recent
        if data in recent:
            return True
        recent[data] = None
        if len(recent) > self._window:
            del recent[next(iter(recent))]
        return False


def _type_matcher(types: Iterable[str]):
    """A test on an event's raw text (bytes or str): is its ``type`` one of ``types``?

    Safe on raw text because JSON escapes every quote inside a string value: an unescaped
    ``"type":"Name"`` can only be a member of an object, and of ARI's event objects only the
    event itself has a plain ``type`` member (bridges have ``bridge_type``, playbacks none).
    Both compact and pretty (``"type": "Name"``) output are recognised.
    """
    names = "|".join(re.escape(t) for t in sorted(set(types)))
    pattern = rf'"type":\s*"(?:{names})"'
    as_bytes, as_text = re.compile(pattern.encode()).search, re.compile(pattern).search

    def matches(raw) -> bool:
        return (as_bytes if isinstance(raw, bytes) else as_text)(raw) is not None
    return matches
