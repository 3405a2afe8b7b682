"""Serve the app with gevent's WSGI server, TCP_NODELAY on (see architecture.md: ~44 ms per
keep-alive request without it), and the ARI engine's greenlets in the same process."""
import logging
import signal
import socket

import gevent
from gevent.pywsgi import WSGIServer

log = logging.getLogger(__name__)


def listening_socket(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve(app, host, port, with_engine=True):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = None
    if with_engine and app.config.get("ARI_ENABLED"):
        try:
            from ari_engine.runner import start_engine
        except ImportError:
            log.warning("ari_engine is not available; serving the API without calls")
        else:
            engine = start_engine(app)
    server = WSGIServer(listening_socket(host, port), app, log=None, error_log=log)

    def _stop(*_):
        log.info("stopping: finishing requests in flight")
        server.stop(timeout=10)
        if engine is not None:
            engine.stop()

    gevent.signal_handler(signal.SIGTERM, _stop)
    gevent.signal_handler(signal.SIGINT, _stop)
    log.info("serving on http://%s:%s (OpenAPI at /docs)", host, port)
    server.serve_forever()
