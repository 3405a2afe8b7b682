"""campaigns.acw_seconds (after-call work per campaign), agent_sessions.pause_until

Revision ID: campaign_after_call_work
Revises: contacts_search_and_counts
Create Date: 2026-11-30 19:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'campaign_after_call_work'
down_revision = 'contacts_search_and_counts'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acw_seconds', sa.Integer(), server_default='0',
                                      nullable=False))
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pause_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_agent_sessions_pause_until', ['pause_until'])


def downgrade():
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_sessions_pause_until')
        batch_op.drop_column('pause_until')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('acw_seconds')
