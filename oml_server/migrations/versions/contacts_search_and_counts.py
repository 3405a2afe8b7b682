"""campaign/<id>/contacts/ at a million contacts: contacts.search_text (an indexed substring
search: pg_trgm GIN on PostgreSQL, an FTS5 trigram table on SQLite), contact_counts and
campaign_dispositioned (the totals, kept by triggers in the writer's transaction)

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

# The totals are counter rows spread over SHARDS rows per key (PostgreSQL: the backend's pid
# picks one), summed when read: one row per database took every concurrent new_contact's row
# lock until its commit (20 clients inserting into one database: 3x fewer inserts per second).
# Statement-level triggers with transition tables: an import's batch of 1,000 rows is one
# upsert, not 1,000. Deltas may be negative; only the sums mean something.
PG_TRIGGERS = """
CREATE FUNCTION oml_contacts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO contact_counts AS t (database_id, shard, contacts)
    SELECT database_id, mod(pg_backend_pid(), 16), count(*) FROM added GROUP BY database_id
    ON CONFLICT (database_id, shard) DO UPDATE SET contacts = t.contacts + EXCLUDED.contacts;
  ELSE
    INSERT INTO contact_counts AS t (database_id, shard, contacts)
    SELECT database_id, mod(pg_backend_pid(), 16), -count(*) FROM removed GROUP BY database_id
    ON CONFLICT (database_id, shard) DO UPDATE SET contacts = t.contacts + EXCLUDED.contacts;
  END IF;
  RETURN NULL;
END $$;
-- Before the row goes: its dispositions are still there (the cascade deletes them after,
-- when the contact can no longer be found, so oml_dispositions_counted skips them).
CREATE FUNCTION oml_contact_dispositions_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO campaign_dispositioned AS t (campaign_id, database_id, shard, dispositioned)
  SELECT x.campaign_id, OLD.database_id, mod(pg_backend_pid(), 16), -count(*)
    FROM dispositions x WHERE x.contact_id = OLD.id GROUP BY x.campaign_id
  ON CONFLICT (campaign_id, database_id, shard)
  DO UPDATE SET dispositioned = t.dispositioned + EXCLUDED.dispositioned;
  RETURN OLD;
END $$;
CREATE FUNCTION oml_dispositions_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO campaign_dispositioned AS t (campaign_id, database_id, shard, dispositioned)
    SELECT a.campaign_id, c.database_id, mod(pg_backend_pid(), 16), count(*)
      FROM added a JOIN contacts c ON c.id = a.contact_id GROUP BY a.campaign_id, c.database_id
    ON CONFLICT (campaign_id, database_id, shard)
    DO UPDATE SET dispositioned = t.dispositioned + EXCLUDED.dispositioned;
  ELSE
    INSERT INTO campaign_dispositioned AS t (campaign_id, database_id, shard, dispositioned)
    SELECT r.campaign_id, c.database_id, mod(pg_backend_pid(), 16), -count(*)
      FROM removed r JOIN contacts c ON c.id = r.contact_id GROUP BY r.campaign_id, c.database_id
    ON CONFLICT (campaign_id, database_id, shard)
    DO UPDATE SET dispositioned = t.dispositioned + EXCLUDED.dispositioned;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER contacts_added AFTER INSERT ON contacts REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION oml_contacts_counted();
CREATE TRIGGER contacts_removed AFTER DELETE ON contacts REFERENCING OLD TABLE AS removed
  FOR EACH STATEMENT EXECUTE FUNCTION oml_contacts_counted();
CREATE TRIGGER contact_dispositions_gone BEFORE DELETE ON contacts
  FOR EACH ROW EXECUTE FUNCTION oml_contact_dispositions_gone();
CREATE TRIGGER dispositions_added AFTER INSERT ON dispositions REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION oml_dispositions_counted();
CREATE TRIGGER dispositions_removed AFTER DELETE ON dispositions REFERENCING OLD TABLE AS removed
  FOR EACH STATEMENT EXECUTE FUNCTION oml_dispositions_counted();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS contacts_added ON contacts;
DROP TRIGGER IF EXISTS contacts_removed ON contacts;
DROP TRIGGER IF EXISTS contact_dispositions_gone ON contacts;
DROP TRIGGER IF EXISTS dispositions_added ON dispositions;
DROP TRIGGER IF EXISTS dispositions_removed ON dispositions;
DROP FUNCTION IF EXISTS oml_contacts_counted(), oml_contact_dispositions_gone(),
  oml_dispositions_counted();
DROP INDEX IF EXISTS ix_contacts_search_trgm;
"""

# SQLite has row triggers only, and one writer at a time: one shard (0). The FTS5 table
# indexes contacts.search_text (external content: the text is stored once, in contacts) with
# the trigram tokenizer, which serves GLOB/LIKE substring patterns of three characters or more.
SQLITE_TRIGGERS = [
    "CREATE VIRTUAL TABLE contacts_search USING fts5(search_text, content='contacts', "
    "content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER contacts_added AFTER INSERT ON contacts BEGIN
         INSERT OR IGNORE INTO contact_counts (database_id, shard, contacts)
         VALUES (NEW.database_id, 0, 0);
         UPDATE contact_counts SET contacts = contacts + 1
          WHERE database_id = NEW.database_id AND shard = 0;
         INSERT INTO contacts_search (rowid, search_text) VALUES (NEW.id, NEW.search_text);
       END""",
    """CREATE TRIGGER contacts_removed BEFORE DELETE ON contacts BEGIN
         UPDATE contact_counts SET contacts = contacts - 1
          WHERE database_id = OLD.database_id AND shard = 0;
         UPDATE campaign_dispositioned SET dispositioned = dispositioned - 1
          WHERE database_id = OLD.database_id AND shard = 0 AND campaign_id IN
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
         INSERT OR IGNORE INTO campaign_dispositioned (campaign_id, database_id, shard, dispositioned)
         SELECT NEW.campaign_id, database_id, 0, 0 FROM contacts WHERE id = NEW.contact_id;
         UPDATE campaign_dispositioned SET dispositioned = dispositioned + 1
          WHERE campaign_id = NEW.campaign_id AND shard = 0
            AND database_id = (SELECT database_id FROM contacts WHERE id = NEW.contact_id);
       END""",
    """CREATE TRIGGER dispositions_removed AFTER DELETE ON dispositions BEGIN
         UPDATE campaign_dispositioned SET dispositioned = dispositioned - 1
          WHERE campaign_id = OLD.campaign_id AND shard = 0
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
    op.create_table('contact_counts',
    sa.Column('database_id', sa.Integer(), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('contacts', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['database_id'], ['contact_databases.id'],
                            name=op.f('fk_contact_counts_database_id_contact_databases'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('database_id', 'shard', name=op.f('pk_contact_counts'))
    )
    op.create_table('campaign_dispositioned',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('database_id', sa.Integer(), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('dispositioned', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                            name=op.f('fk_campaign_dispositioned_campaign_id_campaigns'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['database_id'], ['contact_databases.id'],
                            name=op.f('fk_campaign_dispositioned_database_id_contact_databases'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'database_id', 'shard',
                            name=op.f('pk_campaign_dispositioned'))
    )
    _backfill_search_text(bind)
    bind.execute(sa.text("INSERT INTO contact_counts (database_id, shard, contacts) "
                         "SELECT database_id, 0, count(*) FROM contacts GROUP BY database_id"))
    bind.execute(sa.text(
        "INSERT INTO campaign_dispositioned (campaign_id, database_id, shard, dispositioned) "
        "SELECT x.campaign_id, c.database_id, 0, count(*) FROM dispositions x "
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
    op.drop_table('contact_counts')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('search_text')
