"""New connections for a gunicorn gevent worker that shares its listening socket: each wake-up
takes its share of what is queued, not one connection.

gunicorn's gevent worker accepts one connection per turn of its event loop when it runs more
than one worker (`server.max_accept = 1`), so that one worker does not take every connection
of a burst. Under load a turn takes ~10 ms (every ready request makes a step), so 200 new
connections waited up to 1.1 s in the kernel's queue, their first request with them: at 200
clients that was the p99 (bench/README.md, "gunicorn's tail at 200 clients"). Reading the
queue's length (Linux's TCP_INFO on a listening socket) and taking queued ÷ workers drains a
burst in a few turns, and a worker still leaves the rest to the others.
"""
import socket
import struct

from gevent.server import StreamServer

# struct tcp_info: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked. On a
# listening socket Linux puts the accept queue's length in tcpi_unacked.
_UNACKED_OFFSET = 24


def queued_connections(sock):
    """Connections waiting in `sock`'s accept queue, or None where the system cannot say."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _UNACKED_OFFSET + 4)
    except (AttributeError, OSError):   # not Linux (no TCP_INFO), or not a TCP socket
        return None
    if len(info) < _UNACKED_OFFSET + 4:
        return None
    return struct.unpack_from("I", info, _UNACKED_OFFSET)[0]


def share(queued, workers):
    """How many of `queued` connections one of `workers` takes now: its part, at least one."""
    return -(-queued // workers) if queued else 1


def server_class(workers):
    """A StreamServer that, on each wake-up, accepts its share of the queued connections."""

    class SharingStreamServer(StreamServer):
        def _do_read(self):
            # gunicorn sets max_accept = 1 after creating the server; this runs per wake-up.
            self.max_accept = share(queued_connections(self.socket), workers)
            return super()._do_read()

    return SharingStreamServer


def install(worker):
    """Called in the worker before it serves (gunicorn.conf.py's post_worker_init): its
    listening servers are made from the class above. One worker per process, so the module's
    name is the worker's own."""
    from gunicorn.workers import ggevent
    if worker.cfg.workers > 1:
        ggevent.StreamServer = server_class(worker.cfg.workers)
