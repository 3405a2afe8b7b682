"""Cut an engine event log (ARI_EVENT_LOG) into one recording per call scenario.

    OML_LAB_KEEP=1 ARI_EVENT_LOG=/tmp/rec/events.jsonl \
        .venv/bin/python -m pytest -m integration tests/integration/test_engine_calls.py \
        tests/integration/test_long_calls.py
    .venv/bin/python tests/recordings/make_recordings.py /tmp/rec/events.jsonl \
        /tmp/oml-engine-it-*/oml.sqlite3 tests/recordings/

Each call's events (found through its legs in `call_legs`) go to `<kind>-<reason>.jsonl`, the
first call of each kind and reason only, with its ids replaced by placeholders: `CALLID` for
the call id (inside our channel and bridge ids too) and `1700000000.<n>` (the shape of an
Asterisk unique id) for Asterisk-named channels.
tests/unit/test_engine_replay.py replays them through the engine's real dispatcher and flows.

A call that got in-call commands (issue 9: tests/integration/test_call_control.py) is named
`<kind>-<what happened>-<reason>` (e.g. `click_to_call-transferred-hangup_requested`) and gets
a line `{"type": "OmlCommand", "command": …}` where the command reached the engine (from the
time of its first event in the outbox): tests/unit/test_engine_call_control.py sends its own
command there.
"""
from datetime import datetime, timezone
import json
import os
import sqlite3
import sys


# The outbox event an in-call command writes first -> the command (tests send their own params)
COMMAND_EVENTS = {"call.held": "hold", "call.transfer_requested": "transfer",
                  "call.consult_started": "consult_start",
                  "call.third_party_requested": "three_way"}
# What happened to the call, for its recording's name, in this order.
TAGS = (("call.transfer_failed", "transfer_failed"), ("call.transferred", "transferred"),
        ("call.held", "held"), ("call.consult_completed", "consult"),
        ("call.third_party_joined", "three_way"))


def _time(text):
    text = text.replace(" ", "T")
    if text.endswith("+0000"):
        text = text[:-5] + "+00:00"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _in_call(conn):
    """call id -> [tags], call id -> [(time, command)] from the outbox."""
    types, commands = {}, {}
    for cid, type_, created in conn.execute(
            "SELECT call_id, type, created_at FROM events ORDER BY id"):
        seen = types.setdefault(cid, [])
        if type_ in COMMAND_EVENTS and type_ not in seen:
            commands.setdefault(cid, []).append((_time(created), COMMAND_EVENTS[type_]))
        seen.append(type_)
    happened = {cid: [tag for type_, tag in TAGS if type_ in seen] for cid, seen in types.items()}
    return happened, commands


def _with_commands(lines, commands):
    """Each command's line before the first Asterisk event later than it."""
    out, pending = [], sorted(commands)
    for line in lines:
        stamp = json.loads(line).get("timestamp")
        while pending and stamp and _time(stamp) >= pending[0][0]:
            out.append(json.dumps({"type": "OmlCommand", "command": pending.pop(0)[1]}) + "\n")
        out.append(line)
    return out


def main(events_path, db_path, out_dir):
    conn = sqlite3.connect(db_path)
    calls = {cid: (kind, reason) for cid, kind, reason in
             conn.execute("SELECT id, kind, reason FROM calls ORDER BY created_at")}
    owner = {aid: cid for cid, aid in conn.execute("SELECT call_id, asterisk_id FROM call_legs")}
    per_call = {}
    with open(events_path) as f:
        for line in f:
            event = json.loads(line)
            for key in ("channel", "peer", "caller", "bridge"):
                rid = (event.get(key) or {}).get("id") or ""
                cid = owner.get(rid) or (rid[4:36] if rid.startswith("oml-") else None)
                if cid in calls:
                    per_call.setdefault(cid, []).append(line)
                    break
    happened, commands = _in_call(conn)
    written = set()
    for cid, lines in per_call.items():
        name = "-".join([calls[cid][0]] + happened.get(cid, []) + [calls[cid][1] or ""])
        lines = _with_commands(lines, commands.get(cid, []))
        if name in written or calls[cid][1] is None:
            continue
        written.add(name)
        text = "".join(lines).replace(cid, "CALLID")
        named = sorted({aid for aid, owner_id in owner.items()
                        if owner_id == cid and not aid.startswith("oml-")})
        for n, aid in enumerate(named, 1):
            text = text.replace(aid, f"1700000000.{n}")
        with open(os.path.join(out_dir, name + ".jsonl"), "w") as out:
            out.write(text)
        print(f"{name}: {len(lines)} events")


if __name__ == "__main__":
    main(*sys.argv[1:4])
