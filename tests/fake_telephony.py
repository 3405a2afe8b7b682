"""A fake telephony backend (see oml_server/services/telephony.py) that records every hand-off.

Use the `telephony` fixture pattern: `fake = FakeTelephony(); previous = telephony.set_backend(fake)`
and restore `previous` afterwards.
"""
import threading

import pytest

from oml_server.services import telephony


class FakeTelephony:
    def __init__(self, place_error=None, mirror_result="NOT_INUSE", mirror_error=None,
                 push_error=None, hangup_error=None, status="ok"):
        self.place_error = place_error
        self.mirror_result = mirror_result
        self.mirror_error = mirror_error
        self.push_error = push_error
        self.hangup_error = hangup_error
        self._status = status
        self.placed, self.hung_up, self.mirrored, self.credentials = [], [], [], []
        self._lock = threading.Lock()

    def place_click_to_call(self, call, known):
        with self._lock:
            self.known = known
            self.placed.append({"id": call.id, "state": call.state, "agent": call.agent_id,
                                "campaign": call.campaign_id, "contact": call.contact_id,
                                "number": call.number, "active_agent_id": call.active_agent_id})
        if self.place_error is not None:
            raise self.place_error

    def hangup_call(self, call):
        self.hung_up.append(call.id)
        if self.hangup_error is not None:
            raise self.hangup_error

    def presence_changed(self, agent_id):
        self.mirrored.append(agent_id)
        if self.mirror_error is not None:
            raise self.mirror_error
        return self.mirror_result

    def credentials_issued(self, agent_id, sip_user, sip_password):
        self.credentials.append((agent_id, sip_user, sip_password))
        if self.push_error is not None:
            raise self.push_error

    def status(self):
        if isinstance(self._status, Exception):
            raise self._status
        return self._status


@pytest.fixture
def fake_telephony():
    fake = FakeTelephony()
    previous = telephony.set_backend(fake)
    yield fake
    telephony.set_backend(previous)
