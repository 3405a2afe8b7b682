"""The contact and dispositioned counters over 64 shards instead of 16 (PostgreSQL)

Each writer adds to the counter row of its shard, `mod(pg_backend_pid(), N)`, and holds that
row's lock until it commits. Two backends whose pids fall in the same shard queue on each
other: with gunicorn's 2 workers x 10 connections, 20 backends in 16 shards always share some
(bench/README.md, issue 13: pg_locks showed up to one connection of 20 waiting on another's
transaction). In 64 shards the expected number of sharing pairs among 20 backends falls from
~12 to ~3. Totals are sums over whatever shards exist: no row moves, and a downgrade only
narrows where new deltas go. SQLite (one writer at a time, one shard) is unchanged.

Revision ID: counter_shards_64
Revises: contact_bulk_loads
Create Date: 2026-11-30 23:30:00

"""
from alembic import op


revision = 'counter_shards_64'
down_revision = 'contact_bulk_loads'
branch_labels = None
depends_on = None

# The functions of contacts_search_and_counts, frozen here with the shard count as {n}.
FUNCTIONS = """
CREATE OR REPLACE FUNCTION oml_contacts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO contact_counts AS t (database_id, shard, contacts)
    SELECT database_id, mod(pg_backend_pid(), {n}), count(*) FROM added GROUP BY database_id
    ON CONFLICT (database_id, shard) DO UPDATE SET contacts = t.contacts + EXCLUDED.contacts;
  ELSE
    INSERT INTO contact_counts AS t (database_id, shard, contacts)
    SELECT database_id, mod(pg_backend_pid(), {n}), -count(*) FROM removed GROUP BY database_id
    ON CONFLICT (database_id, shard) DO UPDATE SET contacts = t.contacts + EXCLUDED.contacts;
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION oml_contact_dispositions_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO campaign_dispositioned AS t (campaign_id, database_id, shard, dispositioned)
  SELECT x.campaign_id, OLD.database_id, mod(pg_backend_pid(), {n}), -count(*)
    FROM dispositions x WHERE x.contact_id = OLD.id GROUP BY x.campaign_id
  ON CONFLICT (campaign_id, database_id, shard)
  DO UPDATE SET dispositioned = t.dispositioned + EXCLUDED.dispositioned;
  RETURN OLD;
END $$;
CREATE OR REPLACE FUNCTION oml_dispositions_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO campaign_dispositioned AS t (campaign_id, database_id, shard, dispositioned)
    SELECT a.campaign_id, c.database_id, mod(pg_backend_pid(), {n}), count(*)
      FROM added a JOIN contacts c ON c.id = a.contact_id GROUP BY a.campaign_id, c.database_id
    ON CONFLICT (campaign_id, database_id, shard)
    DO UPDATE SET dispositioned = t.dispositioned + EXCLUDED.dispositioned;
  ELSE
    INSERT INTO campaign_dispositioned AS t (campaign_id, database_id, shard, dispositioned)
    SELECT r.campaign_id, c.database_id, mod(pg_backend_pid(), {n}), -count(*)
      FROM removed r JOIN contacts c ON c.id = r.contact_id GROUP BY r.campaign_id, c.database_id
    ON CONFLICT (campaign_id, database_id, shard)
    DO UPDATE SET dispositioned = t.dispositioned + EXCLUDED.dispositioned;
  END IF;
  RETURN NULL;
END $$;
"""


def _shards(n):
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTIONS.format(n=n))


def upgrade():
    _shards(64)


def downgrade():
    _shards(16)
