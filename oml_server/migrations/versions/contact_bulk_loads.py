"""SQLite: a contact import fills the search index and the counters per batch, not per row

contact_bulk_loads holds a database id while an import writes one of its batches (inside the
batch's own transaction, never committed); SQLite's contacts_added row trigger skips those
rows, and the import adds the batch to the FTS5 table and to contact_counts in one statement
each (per-row FTS5 inserts made the import cost 2.7x the CPU). PostgreSQL's triggers are
statement triggers already: the table exists there too, unused.

Revision ID: contact_bulk_loads
Revises: crm_call_variables
Create Date: 2026-11-30 23:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'contact_bulk_loads'
down_revision = 'crm_call_variables'
branch_labels = None
depends_on = None

ADDED = """CREATE TRIGGER contacts_added AFTER INSERT ON contacts {when}BEGIN
         INSERT OR IGNORE INTO contact_counts (database_id, shard, contacts)
         VALUES (NEW.database_id, 0, 0);
         UPDATE contact_counts SET contacts = contacts + 1
          WHERE database_id = NEW.database_id AND shard = 0;
         INSERT INTO contacts_search (rowid, search_text) VALUES (NEW.id, NEW.search_text);
       END"""
SKIP_BULK = ("WHEN NOT EXISTS (SELECT 1 FROM contact_bulk_loads "
             "WHERE database_id = NEW.database_id) ")


def upgrade():
    op.create_table('contact_bulk_loads',
    sa.Column('database_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('database_id', name=op.f('pk_contact_bulk_loads'))
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DROP TRIGGER IF EXISTS contacts_added")
        bind.exec_driver_sql(ADDED.format(when=SKIP_BULK))


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DROP TRIGGER IF EXISTS contacts_added")
        bind.exec_driver_sql(ADDED.format(when=""))
    op.drop_table('contact_bulk_loads')
