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
"""
import json
import os
import sqlite3
import sys


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
    written = set()
    for cid, lines in per_call.items():
        name = "%s-%s" % calls[cid]
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
