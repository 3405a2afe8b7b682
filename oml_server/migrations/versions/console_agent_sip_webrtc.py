"""agents.sip_webrtc: the agent's phone is the browser console (WebRTC endpoint settings)

Revision ID: console_agent_sip_webrtc
Revises: a1c0e7d4b2f1
Create Date: 2026-11-30 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'console_agent_sip_webrtc'
down_revision = 'a1c0e7d4b2f1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sip_webrtc', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('sip_webrtc')
