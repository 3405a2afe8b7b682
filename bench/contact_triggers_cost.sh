#!/bin/bash
# What the contacts page's counter triggers cost the writers (bench/README.md, "Supervision and
# the contacts page"): a throw-away PostgreSQL database (127.0.0.1:5432, user postgres), migrated,
# 200,000 contacts; pgbench runs one contact INSERT and one disposition INSERT per transaction
# (1 client) and contact INSERTs from 20 clients, with the triggers enabled and disabled in turn.
#   bash bench/contact_triggers_cost.sh
set -e
cd "$(dirname "$0")/.."
T=$(mktemp -d)
DB=trigbench_$$
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB"
.venv/bin/python - <<PY
from oml_server.app import create_app
from flask_migrate import upgrade
app = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg2://postgres@127.0.0.1:5432/$DB", "ARI_ENABLED": False,
                  "SECRET_KEY": "x"*40, "SIP_SECRET_KEY": "y"*40, "ARI_PASSWORD": "z"})
with app.app_context():
    upgrade()
PY
P="psql -h 127.0.0.1 -U postgres -d $DB -q"
$P <<SQL
INSERT INTO users (id, username, password_hash, role, first_name, last_name, email, is_active, token_version, created_at) VALUES (1,'a','x','Agente','','','',true,0,now());
INSERT INTO agents (id, user_id, sip_extension, sip_webrtc, "group") VALUES (1,1,'1001',false,'');
INSERT INTO contact_databases (id, name, columns, main_phone, other_phones) VALUES (1,'d','["TEL"]','TEL','[]');
INSERT INTO campaigns (id, name, type, state, database_id, allow_duplicate_phones, record, strategy) VALUES (1,'c','manual','active',1,true,false,'leastrecent');
INSERT INTO disposition_options (id, campaign_id, name, type, hidden) VALUES (1,1,'V','engaged',false);
INSERT INTO contacts (id, database_id, main_phone, data, created_at, search_text) SELECT i, 1, i::text, '{}', now(), i::text FROM generate_series(1, 200000) i;
SELECT setval(pg_get_serial_sequence('contacts','id'), 200000);
SQL
cat > $T/contact.sql <<'S'
INSERT INTO contacts (database_id, main_phone, data, created_at, search_text) VALUES (1, '351', '{"TEL": "351"}', now(), '351');
S
cat > $T/disp.sql <<'S'
\set c random(1, 200000)
INSERT INTO dispositions (contact_id, campaign_id, agent_id, option_id, comments, created_at, updated_at) VALUES (:c, 1, 1, 1, '', now(), now()) ON CONFLICT DO NOTHING;
S
for round in 1 2 3; do
  for mode in ENABLE DISABLE; do
    $P -c "ALTER TABLE contacts $mode TRIGGER USER; ALTER TABLE dispositions $mode TRIGGER USER"
    c=$(pgbench -h 127.0.0.1 -U postgres -n -c 1 -T 8 -f $T/contact.sql $DB 2>/dev/null | grep "latency average" | awk '{print $4}')
    d=$(pgbench -h 127.0.0.1 -U postgres -n -c 1 -T 8 -f $T/disp.sql $DB 2>/dev/null | grep "latency average" | awk '{print $4}')
    c50=$(pgbench -h 127.0.0.1 -U postgres -n -c 20 -j 2 -T 8 -f $T/contact.sql $DB 2>/dev/null | grep "^tps" | awk '{print $3}')
    echo "round $round triggers $mode: contact INSERT 1 client ${c} ms, disposition INSERT ${d} ms, contact INSERT 20 clients ${c50} tps"
  done
done
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $DB WITH (FORCE)"
