"""gunicorn settings, read from the working directory (`gunicorn -k gevent wsgi:app` run here).

Fair keep-alive for gevent workers: after each request the worker yields once before reading
the connection's next one. Without it, a client that answers fast has its next request already
in the socket buffer, the read does not block, and the worker serves that one connection again
and again while the others wait: at 50 clients bench/api_bench.py measured a 5 ms median but a
1.3 s p99. oml_server/serve.py does the same for `oml-server run`.
"""


def post_request(worker, req, environ, resp):
    if type(worker).__module__ == "gunicorn.workers.ggevent":
        import gevent
        gevent.sleep(0)
