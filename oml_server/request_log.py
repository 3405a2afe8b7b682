"""One log line per HTTP request: method, path, status and milliseconds (to the response's
first byte: the answer is built by then for every endpoint but the Swagger UI's static files).

WSGI middleware, outermost, so the path is the one the client sent and every answer is
counted, errors included. Costs nothing when INFO is off for its logger."""
import logging
import time

log = logging.getLogger("oml_server.request")


class RequestLog:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if not log.isEnabledFor(logging.INFO):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        # Read now: the apps inside may rewrite PATH_INFO (TrailingSlash adds the slash).
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        seen = []

        def recording_start_response(status, headers, exc_info=None):
            seen.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, recording_start_response)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            status = int(seen[-1].split(" ", 1)[0]) if seen else 500
            log.info("%s %s %s %.1f ms", method, path, status, ms,
                     extra={"method": method, "path": path, "status": status, "ms": ms})
