"""Serve the app with gevent's WSGI server, TCP_NODELAY on (see architecture.md: ~44 ms per
keep-alive request without it), and the ARI engine's greenlets in the same process.

The CRM delivery greenlets (oml_server/delivery_worker.py) run here too. SIGTERM / SIGINT
stop it gracefully (tests/integration/test_no_data_loss.py holds it to that):
the listening socket closes at once (a new server may bind the port), every request already
read runs to its end and is answered with `Connection: close`, idle keep-alive connections are
closed (a request is never half-processed: either it was read and gets its answer, or it was
never read and the client sees a refused/reset connection), and only then does the process
exit. gevent's own `WSGIServer.stop` does not do this without a pool: the main greenlet returned
and the process exited under requests still in flight.
"""
import logging
import signal
import socket
import time

import gevent
import gevent.event
from gevent.pywsgi import WSGIHandler, WSGIServer

from .heap import freeze_startup_objects

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 10.0   # requests still running after this are abandoned
IDLE_GRACE = 1.0       # a keep-alive client mid-exchange may still send one more request


def listening_socket(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class DrainingHandler(WSGIHandler):
    """Knows whether it is waiting for a request (idle) and closes the connection after the
    current request once the server drains."""

    idle = True

    def handle(self):
        self.server.handlers.add(self)
        try:
            super().handle()
        finally:
            self.server.handlers.discard(self)

    def read_requestline(self):
        self.idle = True
        # Yield before reading a keep-alive connection's next request. Without it, a client
        # that answers fast has its next request already in the socket buffer, recv does not
        # block, and this greenlet serves that one connection again and again while the
        # others wait: at 200 clients half the requests took 1 ms and the slowest 1.6 s
        # (bench/api_bench.py). One switch per request (microseconds) makes it round-robin.
        gevent.sleep(0)
        try:
            line = super().read_requestline()
        finally:
            self.idle = False
        return line

    def start_response(self, status, headers, exc_info=None):
        if self.server.draining and not any(k.lower() == "connection" for k, _ in headers):
            headers = list(headers) + [("Connection", "close")]
        return super().start_response(status, headers, exc_info)


class DrainingWSGIServer(WSGIServer):
    handler_class = DrainingHandler

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handlers = set()
        self.draining = False

    def drain(self, timeout=DRAIN_TIMEOUT, idle_grace=IDLE_GRACE):
        """Stop accepting, let requests in flight finish, close idle connections. Returns the
        number of connections still busy when `timeout` expired (0 on a clean drain)."""
        self.draining = True
        self.close()  # the listening socket: new connections are refused from now on
        started = time.monotonic()
        while self.handlers:
            waited = time.monotonic() - started
            if waited >= timeout:
                break
            if waited >= idle_grace:
                for handler in list(self.handlers):
                    if handler.idle and getattr(handler, "socket", None) is not None:
                        _shut(handler.socket)
            gevent.sleep(0.02)
        return len(self.handlers)


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the reader with EOF; its greenlet then ends
    except OSError:
        pass


def serve(app, host, port, with_engine=True):
    engine = None
    if app.config.get("ARI_ENABLED"):
        try:
            from ari_engine.runner import install_backend, start_engine
        except ImportError:
            log.warning("ari_engine is not available; serving the API without calls")
        else:
            # Without the engine (split deployment) the API still places calls over ARI's REST;
            # the one `oml-server engine` process handles their events.
            engine = start_engine(app) if with_engine else None
            if engine is None:
                install_backend(app)
    from . import delivery_worker
    from .services import event_stream
    delivering = delivery_worker.start(app)
    server = DrainingWSGIServer(listening_socket(host, port), app, log=None, error_log=log)
    stop_requested = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop_requested.set)
    gevent.signal_handler(signal.SIGINT, stop_requested.set)
    freeze_startup_objects()
    server.start()
    log.info("serving on http://%s:%s (OpenAPI at /docs)", host, port)
    stop_requested.wait()
    log.info("stopping: finishing requests in flight")
    event_stream.hub(app).close_all()   # open event streams end now instead of holding the drain
    busy = server.drain()
    if busy:
        log.warning("stopped with %d request(s) still running after %.0f s", busy, DRAIN_TIMEOUT)
    else:
        log.info("all requests in flight answered")
    if delivering is not None:
        delivering.stop()
    if engine is not None:
        engine.stop()
