"""Removing channels and bridges from Asterisk: 404 means already gone (done), anything else
is logged and never stops the caller, who is cleaning up after something went wrong anyway."""
import logging

from .ari_client import AriError, AriNotFound

log = logging.getLogger(__name__)


def hang_up(ari, channel_id):
    if not channel_id:
        return
    try:
        ari.hangup(channel_id)
    except AriNotFound:
        pass
    except AriError as exc:
        log.warning("hangup %s: %s", channel_id, exc)


def destroy_bridge(ari, bridge_id):
    """None when the bridge is gone; ARI's error (logged) when Asterisk refused."""
    if not bridge_id:
        return None
    try:
        ari.bridge_destroy(bridge_id)
    except AriNotFound:
        pass
    except AriError as exc:
        log.warning("destroy bridge %s: %s", bridge_id, exc)
        return exc
    return None
