"""The bridges a call keeps until it ends besides its own: the holding bridge and the
consultation's. Each is created on first use by whichever call worker needs it, which may not
be the worker that created it before (a worker leaves a quiet call; the next event or command
starts another). Asterisk 16 refuses to create an id that exists (500, "Supplying a bridge type
when updating a bridge is not allowed"), so an existing bridge is looked up, not created.

They are destroyed with the call (flow.teardown_legs), never in the middle of it: destroying a
bridge while a channel is being moved out of it or hung up in it can leave Asterisk listing a
bridge no application owns, which nothing can destroy until Asterisk restarts (seen once in
about ten consultations completed from the browser console; the ids of such a bridge answer
409 "Bridge not in Stasis application")."""
from .ari_client import AriError


def create_once(ari, bridge_id, bridge_type):
    """Create the bridge unless it exists."""
    try:
        ari.bridge_create(bridge_id, type=bridge_type)
    except AriError as refused:
        try:
            ari.bridge(bridge_id)
        except AriError:
            raise refused from None
