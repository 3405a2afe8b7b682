"""What the engine needs from Asterisk, checked once at every connect.

An Asterisk the project did not configure can lack a module the engine relies on, and the
failure then shows up far away and silently (without chan_bridge_media every ring tone into a
bridge fails with "No channel type registered for 'Announcer'"). So at connect the engine lists
the loaded modules and says once, clearly, what is missing (the log, the heartbeat row, and so
the health endpoint). README "A production Asterisk" lists the same, and the dialplan contexts.

The dialplan itself cannot be checked through ARI in Asterisk 16: GET /asterisk/variable reads
global variables only (DIALPLAN_EXISTS() and VERSION() both answer ""), and a Local channel is
created whatever its context (tried on the lab).
"""
import logging

from .ari_client import AriError

log = logging.getLogger(__name__)

# module -> what the engine does with it
REQUIRED_MODULES = {
    "res_stasis.so": "Stasis applications",
    "app_stasis.so": "Stasis() in the dialplan (inbound and agent-dialled calls)",
    "res_ari_channels.so": "originating and hanging up channels",
    "res_ari_bridges.so": "bridging the agent with the contact",
    "res_ari_endpoints.so": "agents' registration state",
    "res_ari_device_states.so": "mirroring agents' availability",
    "res_stasis_device_state.so": "mirroring agents' availability",
    "res_ari_playbacks.so": "stopping the ring tone",
    "res_stasis_playback.so": "the ring tone the agent hears while the contact rings",
    "chan_bridge_media.so": "playing the ring tone into a bridge (Announcer channels)",
    "bridge_simple.so": "two-party bridges",
    "bridge_softmix.so": "mixing bridges",
    "chan_pjsip.so": "SIP phones and trunks",
    "res_sorcery_memory.so": "agents' SIP accounts pushed through ARI",
    "res_pjsip_header_funcs.so": "the call's data as SIP headers on the agent's INVITE",
    "res_musiconhold.so": "music on hold for held callers and callers being transferred",
}


def check(ari, settings=None):
    """Problems found, as sentences (empty when all is there)."""
    problems = []
    try:
        loaded = {m.get("name") for m in ari.request("GET", "/asterisk/modules") or []}
    except AriError as exc:
        return [f"cannot list Asterisk modules ({exc}); load res_ari_asterisk.so"]
    for module, why in REQUIRED_MODULES.items():
        if module not in loaded:
            problems.append(f"module {module} is not loaded: needed for {why}")
    return problems
