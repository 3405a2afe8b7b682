"""What happens to a call after the bridge (issue 9): the commands the REST layer sends (hold,
unhold, blind transfers, hangup-leg) and the events of the legs those commands create.

Commands reach a call's worker as `OmlCommand` events, so they are handled in order with the
call's Asterisk events: from the REST worker of the engine's own process directly
(`dispatcher.enqueue`), from an API-only worker as an ARI user event (`oml-command`) that
Asterisk delivers on the engine's websocket (see `commands.py`). The dispatcher offers every
event to `CallControl.handle` before the call's own flow; it takes the ones that are about
this module's legs and leaves the rest (a caller or contact hanging up ends the call as before).

Hold moves the caller (contact) out of the call's bridge into the call's holding bridge,
`oml-<call id>-hold`, which plays music on hold; the agent stays in the call's bridge. A
transfer parks the caller there the same way while the target rings (transfer.py).
"""
import logging

from sqlalchemy import select

from oml_server.extensions import db
from oml_server.models import FINAL_CALL_STATES, AgentProfile
from oml_server.services import call_control_state as control_state

from . import call_headers, call_store, ids
from .ari_client import AriError
from .call_bridges import create_once
from .cleanup import hang_up
from .flow import Flow, channel_of

log = logging.getLogger(__name__)

COMMAND = "OmlCommand"
USER_EVENT = "oml-command"      # the ARI user event name an API-only worker sends
LEG_EVENTS = frozenset({"StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"})


def hold_bridge(call_id):
    return f"{ids.bridge(call_id)}-hold"


class CallControl(Flow):
    kind = "call_control"
    timers = frozenset({"OmlTransferRetry"})

    def __init__(self, engine):
        super().__init__(engine)
        from .conference import Conferences
        from .consult import Consults
        from .transfer import Transfers
        self.transfers = Transfers(self)
        self.consults = Consults(self)
        self.conferences = Conferences(self)

    # -- routing ----------------------------------------------------------------------------

    def handle(self, ctx, event):
        """True when the event was this module's (the call's flow does not see it)."""
        kind = event["type"]
        if kind == COMMAND:
            self.command(ctx, event)
            return True
        if kind in self.timers:
            self.transfers.timer(ctx, event)
            return True
        if kind not in LEG_EVENTS:
            return False
        channel_id = channel_of(event)
        role = ctx.role(channel_id) if channel_id else None
        handler = {"transfer_target": self.transfers, "consult": self.consults,
                   "third_party": self.conferences}.get(role)
        if handler is not None:
            if kind == "ChannelHangupRequest":
                self.note(ctx, event)
                return True
            row = ctx.row
            if row is not None and row.state in FINAL_CALL_STATES:
                self.is_over(ctx)  # also hangs up a leg that answers too late
            elif row is not None:
                handler.leg_event(ctx, event, channel_id, row)
            return True
        if role in ("agent", "contact", "caller") and kind != "ChannelHangupRequest":
            return self.side_event(ctx, kind, channel_id, "agent" if role == "agent" else "contact")
        return False

    def side_event(self, ctx, kind, channel_id, side):
        """An agent or caller leg of a bridged call: True when this module takes it."""
        if kind == "StasisStart" and channel_id in (ids.agent_channel(ctx.call_id),
                                                    ids.contact_channel(ctx.call_id)):
            # A click-to-call's own legs (ids made once per call) enter the app when answered,
            # before the call can be bridged: the flow's, with no read of the row here.
            return False
        row = ctx.row
        if row is None or row.state != "bridged":
            return False
        current = row.agent_channel_id if side == "agent" else row.contact_channel_id
        # A leg that is no longer the call's (transferred away, left a three-way call) must not
        # end the call when it goes.
        if current != channel_id:
            if kind == "StasisStart":
                hang_up(self.ari, channel_id)
            return True
        if kind not in ("StasisEnd", "ChannelDestroyed"):
            return False
        # The agent hung up while consulting: the target takes the call.
        if side == "agent" and self.consults.agent_left(ctx, row):
            return True
        # One of three left: the other two go on.
        return self.conferences.party_left(ctx, row, channel_id, side)

    def command(self, ctx, event):
        name = event.get("command")
        row = ctx.reload()
        if row is None or row.state != "bridged":
            log.info("call %s: %s ignored, the call is %s", ctx.call_id, name,
                     row.state if row else "unknown")
            return
        args = event.get("params") or {}  # not "args": Stasis arguments (dispatcher)
        try:
            if name == "hold":
                self.hold(ctx, row)
            elif name == "unhold":
                self.unhold(ctx, row)
            elif name == "hangup_leg":
                self.hangup_leg(ctx, args.get("leg"))
            elif name == "transfer":
                self.transfers.start(ctx, row, args)
            elif name == "three_way":
                self.conferences.add(ctx, row, args)
            elif name == "consult_start":
                self.consults.start(ctx, row, args)
            elif name == "consult_complete":
                self.consults.complete(ctx, row, args)
            elif name == "consult_cancel":
                self.consults.cancel(ctx, row, args)
            else:
                log.warning("call %s: unknown command %r", ctx.call_id, name)
        except AriError as exc:
            log.warning("call %s: %s failed: %s", ctx.call_id, name, exc)

    # -- hold -------------------------------------------------------------------------------

    def park(self, ctx, caller):
        """Move the caller into the call's holding bridge, with music. The bridge is created on
        first use (an earlier worker of the call may have: call_bridges) and recorded as a leg
        before it exists, so every teardown destroys it. The music is started on every hold:
        Asterisk stops it when the caller leaves (a second hold was silent)."""
        bridge_id = hold_bridge(ctx.call_id)
        if not ctx.scratch.get("hold_bridge"):
            call_store.add_legs(ctx.call_id, (bridge_id, "hold", "bridge"))
            create_once(self.ari, bridge_id, "holding")
            ctx.scratch["hold_bridge"] = True
        self.ari.bridge_start_moh(bridge_id)
        self.ari.bridge_add_channel(bridge_id, caller)

    def unpark(self, ctx, caller):
        """The caller back into the call's bridge (which takes it out of the holding one)."""
        self.ari.bridge_add_channel(ids.bridge(ctx.call_id), caller)

    def hold(self, ctx, row):
        if control_state.is_held(ctx.call_id):
            return
        # While consulting the caller already waits with music in the call's bridge, and must
        # stay there (consult.py): the hold is only noted.
        if control_state.consult_state(ctx.call_id)[0] is None:
            self.park(ctx, row.contact_channel_id)
        control_state.record("call.held", ctx.call_id, leg=row.contact_channel_id)

    def unhold(self, ctx, row):
        if not control_state.is_held(ctx.call_id):
            return
        if control_state.consult_state(ctx.call_id)[0] is None:
            self.unpark(ctx, row.contact_channel_id)
        control_state.record("call.unheld", ctx.call_id, leg=row.contact_channel_id)

    # -- hangup-leg -------------------------------------------------------------------------

    def hangup_leg(self, ctx, leg):
        """Hang up one channel of the call; what its departure means (the call ends when its
        caller or agent goes) is decided by the flows on its events, as for any hang-up."""
        if not leg or ctx.role(leg) is None:
            return
        control_state.record("call.leg_hangup_requested", ctx.call_id, leg=leg)
        hang_up(self.ari, leg)

    # -- shared with transfer.py, consult.py, conference.py -------------------------------

    def ring(self, ctx, row, leg, target_agent, number, app_arg):
        """Originate one more leg of the call into the app, to an agent's phone or an outside
        number (DIAL_TEMPLATE), with the call's data headers (X-OML-Origin: transfer), ringing
        for TRANSFER_TIMEOUT. None, or the AriError when it cannot be originated."""
        if target_agent is not None:
            extension = db.session.scalar(select(AgentProfile.sip_extension)
                                          .where(AgentProfile.id == target_agent))
            endpoint = f"PJSIP/{extension}"
        else:
            endpoint = self.settings.get("DIAL_TEMPLATE", "PJSIP/{number}@trunk").format(
                number=number)
        try:
            self.ari.originate(endpoint, appArgs=f"{app_arg},{ctx.call_id}", channelId=leg,
                               timeout=int(self.settings.get("TRANSFER_TIMEOUT", 20)),
                               callerId=f'"{row.number}" <{row.number}>',
                               variables=call_headers.agent_leg_variables(
                                   row, target_agent, origin="transfer"))
        except AriError as exc:
            log.info("call %s: %s unreachable: %s", ctx.call_id, endpoint, exc)
            return exc
        return None

    def end_call(self, ctx, reason, cause=None, gone=None):
        row = ctx.reload()
        final = "ended" if row is not None and row.state == "bridged" else "failed"
        self.end(ctx, final, reason, cause=cause, gone=gone)

