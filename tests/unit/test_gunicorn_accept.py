"""gunicorn's gevent workers take their share of a burst of new connections per wake-up
(oml_server/gunicorn_accept.py), where gunicorn alone takes one per event-loop turn."""
import os
import signal
import socket
import sys

import gevent
import pytest
from gevent import socket as gsocket

from oml_server import gunicorn_accept

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the accept queue's length comes from Linux's TCP_INFO")


def listener():
    sock = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def connect(sock, n):
    """n clients whose connections the kernel completes and queues, none accepted yet."""
    clients = [socket.create_connection(sock.getsockname(), timeout=5) for _ in range(n)]
    gevent.sleep(0.05)
    return clients


@linux_only
def test_the_accept_queue_length_is_read_from_the_kernel():
    sock = listener()
    clients = connect(sock, 5)
    try:
        assert gunicorn_accept.queued_connections(sock) == 5
        sock.accept()[0].close()
        sock.accept()[0].close()
        assert gunicorn_accept.queued_connections(sock) == 3
    finally:
        for client in clients:
            client.close()
        sock.close()


def test_a_socket_that_is_not_tcp_has_no_queue_to_read():
    left, right = socket.socketpair()
    try:
        assert gunicorn_accept.queued_connections(left) is None
    finally:
        left.close()
        right.close()


def test_a_worker_takes_its_part_of_the_queue_and_at_least_one():
    assert gunicorn_accept.share(10, 2) == 5
    assert gunicorn_accept.share(5, 2) == 3
    assert gunicorn_accept.share(1, 2) == 1
    assert gunicorn_accept.share(0, 2) == 1      # woken with nothing counted: try one
    assert gunicorn_accept.share(None, 2) == 1   # no count: gunicorn's one per turn


def wake_ups(server_class, queued):
    """Connections accepted at each wake-up of a server of two workers for a burst of
    `queued` (gunicorn sets max_accept = 1 after creating it, as it does)."""
    sock = listener()
    clients = connect(sock, queued)
    accepted = []
    per_wake_up = []

    class Recording(server_class):
        def _do_read(self):
            before = len(accepted)
            result = super()._do_read()
            per_wake_up.append(len(accepted) - before)
            return result

        def do_handle(self, client, address):
            accepted.append(client)

    server = Recording(sock, handle=lambda *_: None)
    server.max_accept = 1
    server.start()
    try:
        deadline = gevent.Timeout(5)
        deadline.start()
        try:
            while len(accepted) < queued:
                gevent.sleep(0.01)
        finally:
            deadline.close()
        return [n for n in per_wake_up if n]
    finally:
        server.close()
        for conn in accepted + clients:
            conn.close()


@linux_only
def test_a_burst_of_ten_is_taken_in_four_wake_ups_not_ten():
    assert wake_ups(gunicorn_accept.server_class(2), 10) == [5, 3, 1, 1]
    # gunicorn's own: one connection per wake-up (the loop turn of a busy worker).
    assert wake_ups(gevent.server.StreamServer, 10) == [1] * 10


def test_install_leaves_a_single_worker_as_gunicorn_makes_it():
    from gunicorn.workers import ggevent

    class Cfg:
        workers = 1

    class Worker:
        cfg = Cfg()

    before = ggevent.StreamServer
    gunicorn_accept.install(Worker())
    assert ggevent.StreamServer is before   # one worker already accepts 100 per turn


def established_connections(pid, port):
    """The TCP connections to `port` that process `pid` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if fields[3] == "01" and local_port == port and fields[9] in inodes:
                count += 1
    return count


def two_ready_workers(tmp_path):
    """gunicorn -w 2 with the repository's gunicorn.conf.py, once both workers have loaded
    the app (a worker not yet ready takes no part in sharing connections)."""
    from tests.unit.test_crm_server_process import Gunicorn, World, wait_until
    server = Gunicorn(World(str(tmp_path / "oml.sqlite3")), str(tmp_path), workers=2,
                      DELIVERY_ENABLED="0").start()

    def ready():
        with open(server.log_path) as log:
            return log.read().count("Worker ready") == 2
    wait_until(ready, 30, "two workers ready")
    return server


@linux_only
def test_two_gunicorn_workers_answer_a_burst_queued_while_they_could_not_accept(tmp_path):
    """The repository's gunicorn.conf.py with two workers: 40 connections queued while both
    workers were stopped are all answered once they run, and both workers take part: each
    takes its share of what is queued when it wakes, not the whole queue."""
    server = two_ready_workers(tmp_path)
    clients = []
    try:
        workers = sorted(server.workers())
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            request = (f"GET /api/v1/health/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
                       ).encode()
            for _ in range(40):
                client = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                client.sendall(request)
                clients.append(client)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        for client in clients:
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        held = [established_connections(pid, server.port) for pid in workers]
        assert sum(held) == 40, held
        assert min(held) > 0, held   # both workers took part (measured: 15-25 each)
    finally:
        for client in clients:
            client.close()
        server.kill(signal.SIGTERM)
