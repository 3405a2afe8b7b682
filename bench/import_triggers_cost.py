#!/usr/bin/env python3
"""What the contacts page's search index and counters cost a contact import: `oml-server
import-contacts`' own code on a fresh migrated database, with them (as shipped) and without.

    .venv/bin/python bench/make_contacts_csv.py 200000 /tmp/c.csv
    .venv/bin/python bench/import_triggers_cost.py /tmp/c.csv                       # SQLite
    .venv/bin/python bench/import_triggers_cost.py /tmp/c.csv --backend postgresql  # 127.0.0.1

`on`: as shipped (SQLite: the row trigger skips the import's batches, which fill the FTS5 table
and the counters in one statement each; PostgreSQL: the statement triggers and pg_trgm's GIN
index). `off`: the contacts triggers dropped (PostgreSQL: the trigram index too) and the
SQLite import's own batch upkeep skipped, i.e. an import with no search index and no counters. Modes alternate over --rounds, each on its own
fresh database. CPU is this process's (SQLite runs inside it) plus, on PostgreSQL, the server
backend's (read from /proc: the server must be on this machine).
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]
from supervision_bench import _database  # noqa: E402 (a throw-away database, BENCH_PG_URL's)

from oml_server.services import contact_import  # noqa: E402

SHIPPED_INSERT = contact_import._Importer._insert

DROP = {"sqlite": ["DROP TRIGGER contacts_added", "DROP TRIGGER contacts_removed",
                   "DROP TRIGGER contacts_search_changed"],
        "postgresql": ["DROP TRIGGER contacts_added ON contacts",
                       "DROP TRIGGER contacts_removed ON contacts",
                       "DROP INDEX IF EXISTS ix_contacts_search_trgm"]}


def _backend_cpu(pid):
    """Seconds of CPU a local PostgreSQL backend used so far (utime + stime)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(backend, mode, csv_path):
    from flask_migrate import upgrade
    from sqlalchemy import text

    from oml_server.app import create_app
    from oml_server.extensions import db
    from oml_server.models import Campaign, ContactDatabase
    url, drop = _database(backend)
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "ARI_ENABLED": False,
                          "SECRET_KEY": "k" * 40, "SIP_SECRET_KEY": "s" * 40,
                          "ARI_PASSWORD": "x", "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1}
                          if backend == "postgresql" else {}})
        with app.app_context():
            upgrade()
            database = ContactDatabase(name="d", columns=["TELEFONO", "NOMBRE", "CELULAR", "id_ext"],
                                       main_phone="TELEFONO", other_phones=["CELULAR"],
                                       external_id_column="id_ext")
            campaign = Campaign(name="c", type="manual", state="active", database=database,
                                allow_duplicate_phones=True)
            db.session.add_all([database, campaign])
            db.session.commit()
            if mode == "off":
                for statement in DROP[backend]:
                    db.session.execute(text(statement))
                db.session.commit()
            # SQLite's import writes its batches' index and counter rows itself: not when off.
            contact_import._Importer._insert = SHIPPED_INSERT if mode == "on" else (
                lambda self, records: db.session.execute(contact_import.CONTACTS.insert(), records))
            pid = (db.session.scalar(text("SELECT pg_backend_pid()"))
                   if backend == "postgresql" else None)
            db.session.commit()
            server = _backend_cpu(pid) if pid else 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            report = contact_import.import_csv(campaign.id, csv_path)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if pid:
                assert db.session.scalar(text("SELECT pg_backend_pid()")) == pid, "new backend"
                server = _backend_cpu(pid) - server
            db.session.remove()
            db.engine.dispose()
        return report.imported, wall, cpu, server
    finally:
        drop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = {"on": [], "off": []}
    print(f"{args.backend}: {'mode':4} {'rows':>8} {'wall s':>7} {'client cpu s':>13} "
          f"{'server cpu s':>13} {'cpu s':>6}")
    for _ in range(args.rounds):
        for mode in ("on", "off"):
            imported, wall, cpu, server = run(args.backend, mode, args.csv)
            results[mode].append(cpu + server)
            print(f"{args.backend}: {mode:4} {imported:8d} {wall:7.1f} {cpu:13.1f} {server:13.1f} "
                  f"{cpu + server:6.1f}")
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    print(f"{args.backend}: median CPU with the index and counters {on:.1f} s, without "
          f"{off:.1f} s: {on / off:.2f}x")


if __name__ == "__main__":
    main()
