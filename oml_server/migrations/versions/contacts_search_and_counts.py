"""campaign/<id>/contacts/ at a million contacts: contacts.search_text (an indexed substring
search: pg_trgm GIN on PostgreSQL, an FTS5 trigram table on SQLite), contact_databases.
contacts_count and campaign_dispositioned (the totals, kept by triggers in the writer's
transaction)

Revision ID: contacts_search_and_counts
Revises: crm_sites_webhooks_deliveries
Create Date: 2026-11-30 19:00:00

"""
import json

from alembic import op
import sqlalchemy as sa


revision = 'contacts_search_and_counts'
down_revision = 'crm_sites_webhooks_deliveries'
branch_labels = None
depends_on = None

# Statement-level triggers with transition tables: an import's batch of 1,000 rows updates a
# counter once, not 1,000 times (repeated updates of one row in one transaction grow its
# version chain).
PG_TRIGGERS = """
CREATE FUNCTION oml_contacts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE contact_databases d SET contacts_count = d.contacts_count + a.n
    FROM (SELECT database_id, count(*) AS n FROM added GROUP BY database_id) a
   WHERE d.id = a.database_id;
  RETURN NULL;
END $$;
CREATE FUNCTION oml_contacts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE contact_databases d SET contacts_count = d.contacts_count - r.n
    FROM (SELECT database_id, count(*) AS n FROM removed GROUP BY database_id) r
   WHERE d.id = r.database_id;
  RETURN NULL;
END $$;
-- Before the row goes: its dispositions are still there (the cascade deletes them after,
-- when the contact can no longer be found, so oml_dispositions_removed skips them).
CREATE FUNCTION oml_contact_dispositions_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE campaign_dispositioned t SET dispositioned = t.dispositioned - 1
    FROM dispositions x
   WHERE x.contact_id = OLD.id AND t.campaign_id = x.campaign_id
     AND t.database_id = OLD.database_id;
  RETURN OLD;
END $$;
CREATE FUNCTION oml_dispositions_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO campaign_dispositioned AS t (campaign_id, database_id, dispositioned)
  SELECT a.campaign_id, c.database_id, count(*) FROM added a JOIN contacts c ON c.id = a.contact_id
   GROUP BY a.campaign_id, c.database_id
  ON CONFLICT (campaign_id, database_id)
  DO UPDATE SET dispositioned = t.dispositioned + EXCLUDED.dispositioned;
  RETURN NULL;
END $$;
CREATE FUNCTION oml_dispositions_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE campaign_dispositioned t SET dispositioned = t.dispositioned - r.n
    FROM (SELECT x.campaign_id, c.database_id, count(*) AS n
            FROM removed x JOIN contacts c ON c.id = x.contact_id
           GROUP BY x.campaign_id, c.database_id) r
   WHERE t.campaign_id = r.campaign_id AND t.database_id = r.database_id;
  RETURN NULL;
END $$;
CREATE TRIGGER contacts_added AFTER INSERT ON contacts REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION oml_contacts_added();
CREATE TRIGGER contacts_removed AFTER DELETE ON contacts REFERENCING OLD TABLE AS removed
  FOR EACH STATEMENT EXECUTE FUNCTION oml_contacts_removed();
CREATE TRIGGER contact_dispositions_gone BEFORE DELETE ON contacts
  FOR EACH ROW EXECUTE FUNCTION oml_contact_dispositions_gone();
CREATE TRIGGER dispositions_added AFTER INSERT ON dispositions REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION oml_dispositions_added();
CREATE TRIGGER dispositions_removed AFTER DELETE ON dispositions REFERENCING OLD TABLE AS removed
  FOR EACH STATEMENT EXECUTE FUNCTION oml_dispositions_removed();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS contacts_added ON contacts;
DROP TRIGGER IF EXISTS contacts_removed ON contacts;
DROP TRIGGER IF EXISTS contact_dispositions_gone ON contacts;
DROP TRIGGER IF EXISTS dispositions_added ON dispositions;
DROP TRIGGER IF EXISTS dispositions_removed ON dispositions;
DROP FUNCTION IF EXISTS oml_contacts_added(), oml_contacts_removed(),
  oml_contact_dispositions_gone(), oml_dispositions_added(), oml_dispositions_removed();
DROP INDEX IF EXISTS ix_contacts_search_trgm;
"""

# SQLite has row triggers only. The FTS5 table indexes contacts.search_text (external
# content: the text is stored once, in contacts) with the trigram tokenizer, which serves
# GLOB/LIKE substring patterns of three characters or more.
SQLITE_TRIGGERS = [
    "CREATE VIRTUAL TABLE contacts_search USING fts5(search_text, content='contacts', "
    "content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER contacts_added AFTER INSERT ON contacts BEGIN
         UPDATE contact_databases SET contacts_count = contacts_count + 1 WHERE id = NEW.database_id;
         INSERT INTO contacts_search (rowid, search_text) VALUES (NEW.id, NEW.search_text);
       END""",
    """CREATE TRIGGER contacts_removed BEFORE DELETE ON contacts BEGIN
         UPDATE contact_databases SET contacts_count = contacts_count - 1 WHERE id = OLD.database_id;
         UPDATE campaign_dispositioned SET dispositioned = dispositioned - 1
          WHERE database_id = OLD.database_id AND campaign_id IN
                (SELECT campaign_id FROM dispositions WHERE contact_id = OLD.id);
         INSERT INTO contacts_search (contacts_search, rowid, search_text)
         VALUES ('delete', OLD.id, OLD.search_text);
       END""",
    """CREATE TRIGGER contacts_search_changed AFTER UPDATE OF search_text ON contacts BEGIN
         INSERT INTO contacts_search (contacts_search, rowid, search_text)
         VALUES ('delete', OLD.id, OLD.search_text);
         INSERT INTO contacts_search (rowid, search_text) VALUES (NEW.id, NEW.search_text);
       END""",
    """CREATE TRIGGER dispositions_added AFTER INSERT ON dispositions BEGIN
         INSERT OR IGNORE INTO campaign_dispositioned (campaign_id, database_id, dispositioned)
         SELECT NEW.campaign_id, database_id, 0 FROM contacts WHERE id = NEW.contact_id;
         UPDATE campaign_dispositioned SET dispositioned = dispositioned + 1
          WHERE campaign_id = NEW.campaign_id
            AND database_id = (SELECT database_id FROM contacts WHERE id = NEW.contact_id);
       END""",
    """CREATE TRIGGER dispositions_removed AFTER DELETE ON dispositions BEGIN
         UPDATE campaign_dispositioned SET dispositioned = dispositioned - 1
          WHERE campaign_id = OLD.campaign_id
            AND database_id = (SELECT database_id FROM contacts WHERE id = OLD.contact_id);
       END""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS contacts_added", "DROP TRIGGER IF EXISTS contacts_removed",
               "DROP TRIGGER IF EXISTS contacts_search_changed",
               "DROP TRIGGER IF EXISTS dispositions_added",
               "DROP TRIGGER IF EXISTS dispositions_removed",
               "DROP TABLE IF EXISTS contacts_search"]


def _search_text(phone, data):
    # Frozen copy of services.contacts.search_text (a migration must not change with the app).
    values = [phone] + [v if isinstance(v, str) else str(v)
                        for v in (data or {}).values() if v is not None and v != ""]
    return "\n".join(dict.fromkeys(values)).lower()


def _backfill_search_text(bind):
    rows = bind.execute(sa.text("SELECT id, main_phone, data FROM contacts WHERE search_text IS NULL"))
    update = sa.text("UPDATE contacts SET search_text = :t WHERE id = :i")
    batch = []
    for row in rows:
        data = row.data if isinstance(row.data, dict) else json.loads(row.data or "{}")
        batch.append({"i": row.id, "t": _search_text(row.main_phone, data)})
        if len(batch) == 5000:
            bind.execute(update, batch)
            batch = []
    if batch:
        bind.execute(update, batch)


def _trigram_available(bind):
    """pg_trgm is a contrib module: without it (or the right to create it) search still works,
    by a scan."""
    if bind.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")):
        return True
    if not bind.scalar(sa.text("SELECT count(*) FROM pg_available_extensions "
                               "WHERE name = 'pg_trgm'")):
        return False
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        return True
    except sa.exc.DBAPIError:
        return False


def upgrade():
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), nullable=True))
    with op.batch_alter_table('contact_databases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contacts_count', sa.Integer(), server_default='0',
                                      nullable=False))
    op.create_table('campaign_dispositioned',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('database_id', sa.Integer(), nullable=False),
    sa.Column('dispositioned', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                            name=op.f('fk_campaign_dispositioned_campaign_id_campaigns'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['database_id'], ['contact_databases.id'],
                            name=op.f('fk_campaign_dispositioned_database_id_contact_databases'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'database_id', name=op.f('pk_campaign_dispositioned'))
    )
    _backfill_search_text(bind)
    bind.execute(sa.text("UPDATE contact_databases SET contacts_count = "
                         "(SELECT count(*) FROM contacts c WHERE c.database_id = contact_databases.id)"))
    bind.execute(sa.text(
        "INSERT INTO campaign_dispositioned (campaign_id, database_id, dispositioned) "
        "SELECT x.campaign_id, c.database_id, count(*) FROM dispositions x "
        "JOIN contacts c ON c.id = x.contact_id GROUP BY x.campaign_id, c.database_id"))
    if pg:
        bind.exec_driver_sql(PG_TRIGGERS)
        if _trigram_available(bind):
            bind.exec_driver_sql("CREATE INDEX ix_contacts_search_trgm ON contacts "
                                 "USING gin (search_text gin_trgm_ops)")
    else:
        for statement in SQLITE_TRIGGERS:
            bind.exec_driver_sql(statement)
        bind.exec_driver_sql("INSERT INTO contacts_search (contacts_search) VALUES ('rebuild')")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(PG_DROP)
    else:
        for statement in SQLITE_DROP:
            bind.exec_driver_sql(statement)
    op.drop_table('campaign_dispositioned')
    with op.batch_alter_table('contact_databases', schema=None) as batch_op:
        batch_op.drop_column('contacts_count')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('search_text')
