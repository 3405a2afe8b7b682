"""gunicorn settings, read from the working directory (`gunicorn -k gevent wsgi:app` run here).

Fair keep-alive for gevent workers: after each request the worker yields once before reading
the connection's next one. Without it, a client that answers fast has its next request already
in the socket buffer, the read does not block, and the worker serves that one connection again
and again while the others wait: at 50 clients bench/api_bench.py measured a 5 ms median but a
1.3 s p99. oml_server/serve.py does the same for `oml-server run`.

New connections are accepted in bursts, each worker its share of what is queued
(oml_server/gunicorn_accept.py): gunicorn's one connection per loop turn with two workers left
200 new clients up to 1.1 s in the kernel's queue under load.

The objects of start-up are frozen out of the garbage collector's walks (oml_server/heap.py).

Open event streams end when a worker is told to stop (SIGTERM: shutdown or graceful restart),
instead of holding it for the whole graceful_timeout: gunicorn calls no hook then, so the
worker's SIGTERM handler is wrapped (post_worker_init runs after gunicorn installed it).
"""
import signal


def post_request(worker, req, environ, resp):
    if type(worker).__module__ == "gunicorn.workers.ggevent":
        import gevent
        gevent.sleep(0)


def post_worker_init(worker):
    if type(worker).__module__ != "gunicorn.workers.ggevent":
        return
    import gevent

    from oml_server import gunicorn_accept
    from oml_server.heap import freeze_startup_objects
    gunicorn_accept.install(worker)
    freeze_startup_objects()   # the app is loaded: what exists now lives as long as the worker
    worker.log.info("Worker ready (pid: %s)", worker.pid)   # "Booting worker" is before the app
    stop = worker.handle_exit

    def handle_exit(sig, frame):
        stop(sig, frame)
        from oml_server.services.event_stream import close_all_hubs
        gevent.spawn(close_all_hubs)   # out of the signal handler, as gunicorn's own handlers

    signal.signal(signal.SIGTERM, handle_exit)
