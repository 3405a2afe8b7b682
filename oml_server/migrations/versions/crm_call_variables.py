"""The dialplan variables of an inbound call that the campaign's CRM parameters name

Revision ID: crm_call_variables
Revises: campaign_after_call_work
Create Date: 2026-11-30 19:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'crm_call_variables'
down_revision = 'campaign_after_call_work'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crm_variables', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('crm_variables')
