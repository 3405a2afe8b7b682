"""The bridges a call keeps until it ends besides its own: the holding bridge and the
consultation's. Each is created on first use by whichever call worker needs it, which may not
be the worker that created it before (a worker leaves a quiet call; the next event or command
starts another). Asterisk 16 refuses to create an id that exists (500, "Supplying a bridge type
when updating a bridge is not allowed"), so an existing bridge is looked up, not created.

They are destroyed with the call (flow.teardown_legs), never in the middle of it. The consult
bridge was destroyed as its consultation completed, while the first agent's leg was being hung
up in it and the target's moved out of it into the call's bridge: in about one consultation in
ten from the browser console, Asterisk then kept listing a bridge no application owned, which
nothing can destroy until Asterisk restarts (409 "Bridge not in Stasis application"). The
call's own teardown (its channels hung up, then its bridges destroyed, nothing moved) never
left one."""
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
