#!/usr/bin/env python3
"""What the contacts page's triggers (counters + the FTS5 search table) cost the SQLite import:
`oml-server import-contacts`' own code on a fresh migrated database, triggers on or dropped.

    .venv/bin/python bench/make_contacts_csv.py 200000 /tmp/c.csv
    .venv/bin/python bench/import_triggers_cost.py on /tmp/c.csv
    .venv/bin/python bench/import_triggers_cost.py off /tmp/c.csv
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from flask_migrate import upgrade
from sqlalchemy import text
from oml_server.app import create_app
from oml_server.extensions import db
from oml_server.models import Campaign, ContactDatabase
from oml_server.services import contact_import
drop = sys.argv[1] == "off"
path = os.path.join(tempfile.mkdtemp(), "i.db")
app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "ARI_ENABLED": False,
                  "SECRET_KEY": "k" * 40, "SIP_SECRET_KEY": "s" * 40, "ARI_PASSWORD": "x"})
with app.app_context():
    upgrade()
    d = ContactDatabase(name="d", columns=["TELEFONO", "NOMBRE", "CELULAR", "id_ext"], main_phone="TELEFONO",
                        other_phones=["CELULAR"], external_id_column="id_ext")
    c = Campaign(name="c", type="manual", state="active", database=d, allow_duplicate_phones=True)
    db.session.add_all([d, c]); db.session.commit()
    if drop:
        for t in ("contacts_added", "contacts_removed", "contacts_search_changed"):
            db.session.execute(text(f"DROP TRIGGER {t}"))
        db.session.commit()
    t0, c0 = time.perf_counter(), time.process_time()
    r = contact_import.import_csv(c.id, sys.argv[2])
    print(sys.argv[1], r.imported, f"wall {time.perf_counter()-t0:.1f} s cpu {time.process_time()-c0:.1f} s")
