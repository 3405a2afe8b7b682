"""The engine's event stream on raw frames: unread types skipped, repeated frames dropped."""
import websocket

from ari_engine.ari_client import AriEventStream, AriUnavailable

TEXT = websocket.ABNF.OPCODE_TEXT


class FakeSocket:
    """Hands out `frames` as text frames, then a close frame."""

    def __init__(self, frames):
        self.frames = list(frames)

    def recv_data(self, control_frame=True):
        if self.frames:
            return TEXT, self.frames.pop(0)
        return websocket.ABNF.OPCODE_CLOSE, b""

    def send_close(self):
        pass

    def shutdown(self):
        pass


def read(stream, frames):
    stream.ws = FakeSocket(frames)
    out = []
    try:
        for event in stream.events():
            out.append(event)
    except AriUnavailable:  # the close frame ends the stream
        pass
    return out


def frame(kind, channel, ts):
    return (f'{{"type":"{kind}","channel":{{"id":"{channel}"}},'
            f'"timestamp":"2026-11-30T16:04:51.{ts:03d}+0000"}}').encode()


def test_a_repeated_frame_is_handed_over_once_and_a_different_one_is_not_dropped():
    stream = AriEventStream("http://127.0.0.1:1/ari", "u", "p", "app", drop_repeats=4)
    destroyed = frame("ChannelDestroyed", "a", 1)
    events = read(stream, [destroyed, destroyed, frame("ChannelDestroyed", "a", 2),
                           frame("ChannelDestroyed", "b", 1)])
    assert [(e["channel"]["id"], e["timestamp"][-8:-5]) for e in events] == [
        ("a", "001"), ("a", "002"), ("b", "001")]
    assert stream.repeats == 1


def test_only_the_last_frames_are_remembered():
    stream = AriEventStream("http://127.0.0.1:1/ari", "u", "p", "app", drop_repeats=2)
    first = frame("StasisEnd", "a", 1)
    events = read(stream, [first, frame("StasisEnd", "b", 1), frame("StasisEnd", "c", 1), first])
    assert [e["channel"]["id"] for e in events] == ["a", "b", "c", "a"]  # out of the window
    assert len(stream._recent) == 2


def test_without_drop_repeats_every_frame_is_handed_over():
    stream = AriEventStream("http://127.0.0.1:1/ari", "u", "p", "app",
                            skip_types={"ChannelVarset"})
    same = frame("Dial", "a", 1)
    events = read(stream, [same, frame("ChannelVarset", "a", 1), same])
    assert [e["type"] for e in events] == ["Dial", "Dial"]
    assert stream.skipped == 1
