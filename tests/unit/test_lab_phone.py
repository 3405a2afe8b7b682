"""lab/phone.py's choice of user: the demo lab's agent for an extension."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def phone():
    spec = importlib.util.spec_from_file_location("lab_phone", os.path.join(REPO, "lab", "phone.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_agent_of_an_extension(phone):
    demo = os.path.join(REPO, "lab", "demo.yaml")
    assert phone.demo_login(demo, "1001") == ("agent1", "agent1-lab-pass")
    assert phone.demo_login(demo, 1002) == ("agent2", "agent2-lab-pass")


def test_an_extension_not_in_the_demo_says_to_pass_the_user(phone):
    with pytest.raises(phone.Refused) as info:
        phone.demo_login(os.path.join(REPO, "lab", "demo.yaml"), "4242")
    assert "--username and --password" in str(info.value)
