"""A stub CRM for tests: a real HTTP server on 127.0.0.1 (its own thread) that records every
request and answers what the test scripts: `fail_next(503, 2)` answers 503 twice, `down()`
closes the port (connection refused) and `up()` opens it again on the same port. `/token`
answers `{"token": "tok-<n>", "expires_in": <token_lifetime>}` and counts fetches; other paths
in `require_token` check `Authorization: Bearer <current token>` (401 otherwise)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Received:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        parts = urlsplit(path)
        self.route, self.query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

    def json(self):
        return json.loads(self.body)


class StubCrm:
    def __init__(self, port=0, tls=None):
        self.port = port
        self.tls = tls   # (certificate file, key file): serve HTTPS
        self.received = []
        self.token_fetches = 0
        self.token_lifetime = 3600
        self.require_token = set()   # routes that need the Bearer token
        self.keep_alive = False
        self.valid_tokens = set()
        self._failures = []
        self._lock = threading.Lock()
        self.server = None

    # -- scripting ------------------------------------------------------------------------------
    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def fail_next(self, status, times=1):
        with self._lock:
            self._failures.extend([status] * times)

    def revoke_tokens(self):
        self.valid_tokens.clear()

    def up(self):
        handler = _handler(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        if self.tls:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def requests_to(self, route, ok_only=False):
        return [r for r in list(self.received) if r.route == route
                and (not ok_only or r.status < 300)]

    def wait_for(self, route, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests_to(route)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{route}: {len(self.requests_to(route))} of {count} requests "
                             f"arrived in {timeout} s")


def _handler(crm):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, status, body=b"{}"):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if not crm.keep_alive:   # so that down() really is down for a pooled client
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if urlsplit(self.path).path == "/token":
                with crm._lock:
                    crm.token_fetches += 1
                    token = f"tok-{crm.token_fetches}"
                    crm.valid_tokens.add(token)
                return self._answer(200, json.dumps(
                    {"token": token, "expires_in": crm.token_lifetime}).encode())
            with crm._lock:
                status = crm._failures.pop(0) if crm._failures else None
            if status is None and urlsplit(self.path).path in crm.require_token:
                sent = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if sent not in crm.valid_tokens:
                    status = 401
            received = Received(self.command, self.path, dict(self.headers), body)
            received.status = status or 200
            crm.received.append(received)
            self._answer(received.status)

        do_GET = do_POST = do_PUT = _handle

    return Handler
