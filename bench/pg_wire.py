"""Round trips to PostgreSQL, counted on the wire: a TCP proxy in front of the server that
counts the client's protocol messages, whatever the driver or the ORM does.

Every simple-protocol query (`Q`: psycopg2 sends BEGIN, each statement and COMMIT that way)
and every extended-protocol Sync (`S`: a prepared statement's execution) waits for the
server's answer, so each is one round trip. BEGIN/COMMIT/ROLLBACK are counted apart, since
they are the trips a request saves by running its single write without a transaction block.

    with WireCounter("127.0.0.1", 5432) as wire:
        url = f"postgresql://postgres@127.0.0.1:{wire.port}/mydb"
        ...  # run the server against `url`, send N requests
        counts = wire.snapshot()   # {"trips": …, "statement": …, "begin": …, "commit": …}

SSL and GSS encryption requests are refused by the proxy (the client then speaks plain
text, on 127.0.0.1 only), so every message can be read.
"""
import asyncio
import collections
import socket
import struct
import threading

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
TRANSACTION_WORDS = {"BEGIN": "begin", "START": "begin", "COMMIT": "commit", "END": "commit",
                     "ROLLBACK": "rollback", "ABORT": "rollback"}


class WireCounter:
    def __init__(self, upstream_host="127.0.0.1", upstream_port=5432):
        self.upstream = (upstream_host, upstream_port)
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.port = None
        self._server = None
        self._thread = None

    def __enter__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self._server = self.loop.run_until_complete(
                asyncio.start_server(self._client, sock=sock))
            started.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="pg-wire-counter", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc):
        def shut():
            self._server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(shut)
        self._thread.join(10)

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def _count(self, kind):
        with self.lock:
            self.counts[kind] += 1

    async def _client(self, reader, writer):
        try:
            up_reader, up_writer = await self._startup(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            writer.close()
            return
        await asyncio.gather(self._frontend(reader, up_writer), self._pipe(up_reader, writer))

    async def _startup(self, reader, writer):
        """Refuse SSL/GSS requests, then pass the startup message on unchanged."""
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")
                await writer.drain()
                continue
            rest = await reader.readexactly(length - 8)
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            up_writer.write(head + rest)
            await up_writer.drain()
            return up_reader, up_writer

    async def _frontend(self, reader, up_writer):
        try:
            while True:
                head = await reader.readexactly(5)
                kind, length = head[:1], struct.unpack("!i", head[1:])[0]
                body = await reader.readexactly(length - 4)
                if kind == b"Q":
                    words = body[:16].rstrip(b"\0").split(None, 1)
                    word = words[0].decode("ascii", "replace").upper() if words else ""
                    self._count("trips")
                    self._count(TRANSACTION_WORDS.get(word, "statement"))
                elif kind == b"S":
                    self._count("trips")
                    self._count("statement")
                up_writer.write(head + body)
                await up_writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            up_writer.close()

    @staticmethod
    async def _pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
