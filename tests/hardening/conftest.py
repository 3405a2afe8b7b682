"""Hardening tests reuse tests/conftest.py's fixtures (app, client, make) and add a few worlds."""
import pytest

from tests.fake_telephony import fake_telephony  # noqa: F401 (a fixture)


@pytest.fixture
def world(make):
    """Two agents in campaign A, a third in campaign B, a supervisor of A, options and pauses."""
    class World:
        pass
    w = World()
    w.system = make.external_system()
    w.alice, w.bob, w.carol = make.agent(), make.agent(), make.agent()
    w.supervisor = make.user("Supervisor")
    w.campaign_a = make.campaign(agents=[w.alice, w.bob], supervisors=[w.supervisor],
                                 external_system=w.system, external_id="camp-a",
                                 options=["Venta", "No venta"])
    w.campaign_b = make.campaign(agents=[w.carol], external_system=w.system, external_id="camp-b",
                                 options=["Otra"])
    w.option_a = make.option(w.campaign_a, "Interesado")
    w.option_b = make.option(w.campaign_b, "Interesado B")
    w.contact_a = make.contact(w.campaign_a.database, phone="3510000001", external_id="c-a")
    w.contact_b = make.contact(w.campaign_b.database, phone="3510000002", external_id="c-b")
    w.pause = make.pause()
    return w
