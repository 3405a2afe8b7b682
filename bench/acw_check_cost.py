"""CPU per after-call-work check: the engine runs `agent_presence.end_after_call_work()` once
a second; this times it on a throw-away SQLite database with 1,000 logged-in agents, 100 of
them in an after-call work that is not over yet (the usual case: nothing to end).

    PASSWORD_HASH_METHOD=pbkdf2:sha256:1 .venv/bin/python bench/acw_check_cost.py
"""
import os
import sys
import tempfile
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flask_migrate import upgrade  # noqa: E402

from oml_server import create_app, secrets_file  # noqa: E402
from oml_server.extensions import db  # noqa: E402
from oml_server.models import AgentProfile, AgentSession, utcnow  # noqa: E402
from oml_server.services import agent_presence, users  # noqa: E402

AGENTS, CHECKS = 1000, 2000


def main():
    url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="acw-bench-"), "acw.sqlite3")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "ARI_ENABLED": False, "TESTING": True,
                      **secrets_file.generate()})
    with app.app_context():
        upgrade()
        for i in range(AGENTS):
            users.create_user(f"acw{i}", "pw-acw-bench", "Agente")
        db.session.flush()
        later = utcnow() + timedelta(hours=1)
        for n, agent_id in enumerate(db.session.scalars(db.select(AgentProfile.id)).all()):
            in_acw = n % 10 == 0
            db.session.merge(AgentSession(agent_id=agent_id, online=True, logged_in=True,
                                          paused=in_acw, pause_id="0" if in_acw else None,
                                          pause_until=later if in_acw else None))
        db.session.commit()
        for _ in range(50):   # warm-up
            agent_presence.end_after_call_work()
        start = time.process_time()
        for _ in range(CHECKS):
            agent_presence.end_after_call_work()
        per_check = (time.process_time() - start) / CHECKS
    print(f"sqlite, {AGENTS} agents, {AGENTS // 10} in after-call work not yet over: "
          f"{per_check * 1e6:.0f} µs CPU per check ({per_check * 100:.3f} % of a core at one check a second)")


if __name__ == "__main__":
    main()
