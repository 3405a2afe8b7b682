"""Real audio for who-hears-whom tests: each SIPp phone streams a tone of its own (a pcap of
G.711a RTP written here, played with SIPp's play_pcap_audio) and `RtpCapture` records, from the
loopback interface, the RTP Asterisk sends to each phone's media port; `tone_levels` says how
loud each tone is in what a phone received. No sox or tcpdump needed: the pcap and the A-law
codec are a few lines, the capture is a raw AF_PACKET socket (root)."""
from __future__ import annotations

import math
import socket
import struct
import threading
import time

RATE = 8000
FRAME = 160                     # 20 ms of G.711
_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _lin2alaw(pcm):
    pcm >>= 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = next((i for i, end in enumerate(_SEG_END) if pcm <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    value = seg << 4 | ((pcm >> 1) if seg < 2 else (pcm >> seg)) & 0x0F
    return value ^ mask


def _alaw2lin(code):
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    t = t + 8 if seg == 0 else (t + 0x108) << max(seg - 1, 0)
    return t if code & 0x80 else -t


ALAW_DECODE = [_alaw2lin(c) for c in range(256)]


def write_tone_pcap(path, frequency, seconds, amplitude=8000):
    """A pcap of RTP (PT 8, PCMA) carrying a sine of `frequency` Hz, 20 ms a packet: what
    SIPp's play_pcap_audio streams (it rewrites addresses and ports itself)."""
    packets = int(seconds * RATE / FRAME)
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet
        for n in range(packets):
            payload = bytes(_lin2alaw(int(amplitude * math.sin(
                2 * math.pi * frequency * (n * FRAME + i) / RATE))) for i in range(FRAME))
            rtp = struct.pack("!BBHII", 0x80, 8, n & 0xFFFF, n * FRAME, 0x5EED) + payload
            udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                             socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1")) + udp
            frame = b"\0" * 12 + b"\x08\x00" + ip
            stamp = n * FRAME / RATE
            out.write(struct.pack("<IIII", int(stamp), int((stamp % 1) * 1e6), len(frame),
                                  len(frame)))
            out.write(frame)


class RtpCapture:
    """Every UDP packet to one of `ports` on the loopback, with its arrival time, from a thread."""

    def __init__(self, ports):
        self.ports = set(ports)
        self.packets = []           # (monotonic time, destination port, RTP payload)
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                data, address = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            if address[2] == socket.PACKET_OUTGOING:  # the loopback shows each packet twice
                continue
            if len(data) < 14 + 20 + 8 + 12 or data[12:14] != b"\x08\x00" or data[23] != 17:
                continue
            ihl = (data[14] & 0x0F) * 4
            port = struct.unpack("!H", data[14 + ihl + 2:14 + ihl + 4])[0]
            if port in self.ports:
                rtp = data[14 + ihl + 8:]
                if len(rtp) > 12 and rtp[0] >> 6 == 2 and rtp[1] & 0x7F == 8:
                    cc = rtp[0] & 0x0F
                    self.packets.append((time.monotonic(), port, rtp[12 + 4 * cc:]))

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def samples(self, port, start, end):
        return [ALAW_DECODE[b] for t, p, payload in list(self.packets)
                if p == port and start <= t <= end for b in payload]


def tone_levels(samples, frequencies):
    """{frequency: amplitude of that sine in `samples`} (a single-bin DFT each)."""
    n = len(samples)
    levels = {}
    for f in frequencies:
        w = 2 * math.pi * f / RATE
        re = sum(s * math.cos(w * i) for i, s in enumerate(samples))
        im = sum(s * math.sin(w * i) for i, s in enumerate(samples))
        levels[f] = 2 * math.hypot(re, im) / n if n else 0.0
    return levels
