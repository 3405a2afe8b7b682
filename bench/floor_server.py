#!/usr/bin/env python3
"""The HTTP floor of this machine: the least work an HTTP/1.1 server in Python can do.

    python bench/floor_server.py --port 8099

One process, asyncio, keep-alive, TCP_NODELAY: it reads each request's head and body
(Content-Length) and answers a fixed JSON body, whatever the method and path. Whatever the
API server costs above this is the price of routing, authentication, validation, the
database and the framework; api_bench.py reports our figures as multiples of this one.
"""
import argparse
import asyncio
import signal
import socket

BODY = b'{"status": "OK", "message": "floor", "id": 1}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\nConnection: keep-alive\r\n\r\n" + BODY)


class FloorProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0].strip() or 0)
            total = end + 4 + length
            if len(self.buffer) < total:
                break
            self.buffer = self.buffer[total:]
            out.append(RESPONSE)
        if out:
            self.transport.write(b"".join(out))


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorProtocol, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
