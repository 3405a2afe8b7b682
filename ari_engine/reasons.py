"""Why a call ended: the `reason` written on the call row, from where the call was and what
Asterisk said (hangup cause, dial status).

Q.850 causes seen from Asterisk 16 here: 16 normal clearing, 17 user busy (SIP 486),
21 call rejected (SIP 603), 19 no answer, 0 when an originate/dial timeout expires,
1/3/20/27/34/38 unreachable or network failure.
"""
AGENT_NO_ANSWER = "agent_no_answer"
AGENT_REJECTED = "agent_rejected"
AGENT_UNREACHABLE = "agent_unreachable"
AGENT_OFFLINE = "agent_offline"
AGENT_HANGUP = "agent_hangup"
CONTACT_HANGUP = "contact_hangup"
CONTACT_BUSY = "contact_busy"
CONTACT_NO_ANSWER = "contact_no_answer"
CONTACT_UNREACHABLE = "contact_unreachable"
CALLER_HANGUP = "caller_hangup"
NO_AGENT_AVAILABLE = "no_agent_available"
ASTERISK_LOST = "asterisk_lost"
HANGUP_REQUESTED = "hangup_requested"
INVALID_NUMBER = "invalid_number"      # an agent dialled something makeCall would refuse
AGENT_BUSY = "agent_busy"              # an agent already on a call dialled again
SETUP_LOST = "setup_lost"              # never reached Asterisk (e.g. a failure before originate)
# A transfer's target did not take the call (issue 9); the call itself goes on.
TARGET_BUSY = "target_busy"
TARGET_REJECTED = "target_rejected"
TARGET_NO_ANSWER = "target_no_answer"
TARGET_UNREACHABLE = "target_unreachable"
TARGET_HANGUP = "target_hangup"        # a consulted target hung up before the transfer
TRANSFER_FAILED = "transfer_failed"    # the call ended: nobody took it after a transfer

BUSY_CAUSES = {17}
REJECT_CAUSES = {21}
NO_ANSWER_CAUSES = {0, 18, 19}
DIALSTATUS_REASONS = {"BUSY": CONTACT_BUSY, "NOANSWER": CONTACT_NO_ANSWER,
                      "CONGESTION": CONTACT_UNREACHABLE, "CHANUNAVAIL": CONTACT_UNREACHABLE}


# ChannelHangupRequest with "soft": true carries Asterisk's AST_SOFTHANGUP_* flag in "cause",
# not a Q.850 cause (ARI's DELETE /channels gives 16 = EXPLICIT, "core stop" gives 4 = SHUTDOWN).
SOFTHANGUP_SHUTDOWN = 0x04


def note_hangup(memo, channel_id, event):
    """Remember what a ChannelHangupRequest/ChannelDestroyed says about why `channel_id` goes:
    its Q.850 cause, or that Asterisk itself is shutting down (seen only on soft requests)."""
    cause = event.get("cause")
    if cause is None:
        return
    if event.get("type") == "ChannelHangupRequest" and event.get("soft"):
        if cause & SOFTHANGUP_SHUTDOWN:
            memo["shutdown"] = True
        return
    memo.setdefault("causes", {})[channel_id] = cause


def for_leg_gone(state, is_agent_leg, cause=None, dialstatus=None, shutdown=False):
    """(final state, reason) when one leg of a two-leg call disappears in `state`."""
    if shutdown:  # Asterisk is stopping: the legs did not hang up, the server went away
        return ("ended" if state == "bridged" else "failed"), ASTERISK_LOST
    if state == "bridged":
        return "ended", AGENT_HANGUP if is_agent_leg else CONTACT_HANGUP
    if is_agent_leg:
        if state in ("requested", "agent_ringing"):
            if cause in BUSY_CAUSES or cause in REJECT_CAUSES:
                return "failed", AGENT_REJECTED
            if cause in NO_ANSWER_CAUSES or cause is None:
                return "failed", AGENT_NO_ANSWER
            return "failed", AGENT_UNREACHABLE
        return "failed", AGENT_HANGUP  # hung up while the contact was being dialled
    if dialstatus in DIALSTATUS_REASONS:
        return "failed", DIALSTATUS_REASONS[dialstatus]
    if cause in BUSY_CAUSES:
        return "failed", CONTACT_BUSY
    if cause in NO_ANSWER_CAUSES:
        return "failed", CONTACT_NO_ANSWER
    return "failed", CONTACT_UNREACHABLE


def for_target_gone(cause):
    """Why a transfer target's leg went before it answered."""
    if cause in BUSY_CAUSES:
        return TARGET_BUSY
    if cause in REJECT_CAUSES:
        return TARGET_REJECTED
    if cause in NO_ANSWER_CAUSES or cause is None:
        return TARGET_NO_ANSWER
    return TARGET_UNREACHABLE
