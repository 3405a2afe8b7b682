"""Asterisk object ids chosen from the call id.

Choosing our own ids (instead of Asterisk's) lets events be matched to their call before the
originate request even returns, and lets reconciliation recognise our objects after a restart.
"""
PREFIX = "oml-"


def agent_channel(call_id):
    return f"{PREFIX}{call_id}-agent"


def contact_channel(call_id):
    return f"{PREFIX}{call_id}-contact"


def bridge(call_id):
    return f"{PREFIX}{call_id}"


def call_id_of(resource_id):
    """The call id inside one of our channel or bridge ids; None for anything else."""
    if not resource_id or not resource_id.startswith(PREFIX):
        return None
    rest = resource_id[len(PREFIX):]
    return rest.split("-", 1)[0] or None


def _suffix(resource_id):
    """What follows the call id in one of our ids (`agent`, `agent-3fa2`, `contact`, "" for
    the bridge), or None for anything not ours."""
    if not is_ours(resource_id):
        return None
    return resource_id[len(PREFIX):].partition("-")[2]


def role_of(resource_id):
    """The role our own channel id names (`agent`, `contact`…; an attempt suffix such as
    `-agent-3fa2` dropped), or None for a bridge or anything not ours."""
    suffix = _suffix(resource_id)
    return suffix.partition("-")[0].rstrip("0123456789") or None if suffix else None


def kind_hint(resource_id):
    """The call kind one of our channel ids implies, when it does: a plain `-agent` leg is
    click-to-call's (makeCall originates it), an agent leg with an attempt suffix is an
    inbound call's. Spares the dispatcher a row read on a call's first event."""
    suffix = _suffix(resource_id)
    if suffix == "agent":
        return "click_to_call"
    if suffix and suffix.startswith("agent-"):
        return "inbound"
    return None


def attempt_channel(call_id, role, attempt):
    """A channel id for one of several tries of the same role (an inbound call's agents)."""
    return f"{PREFIX}{call_id}-{role}-{attempt}"


def is_ours(resource_id):
    return call_id_of(resource_id) is not None


def device_state_name(extension):
    """The custom device state mirroring an agent's availability (dialplan: DEVICE_STATE())."""
    return f"Stasis:oml-agent-{extension}"
