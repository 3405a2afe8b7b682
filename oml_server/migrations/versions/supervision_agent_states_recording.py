"""Supervision: agents' group and status time, console heartbeat, supervisors' phones, campaign
recording and distribution strategy, calls by campaign and day, the call's recording file

Revision ID: supervision_agent_states
Revises: console_agent_sip_webrtc
Create Date: 2026-11-30 16:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'supervision_agent_states'
down_revision = 'console_agent_sip_webrtc'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group', sa.String(length=128), server_default='',
                                      nullable=False))
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('strategy', sa.String(length=16),
                                      server_default='leastrecent', nullable=False))
        batch_op.add_column(sa.Column('last_agent_id', sa.Integer(), nullable=True))
    op.create_index('ix_calls_campaign_created', 'calls', ['campaign_id', 'created_at'])
    op.create_index('ix_contacts_database_id', 'contacts', ['database_id', 'id'])
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recording_file', sa.String(length=255), nullable=True))
    op.create_table(
        'supervisors',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('sip_extension', sa.String(length=32), nullable=False),
        sa.Column('sip_username', sa.String(length=64), nullable=True),
        sa.Column('sip_expires_at', sa.Integer(), nullable=True),
        sa.Column('sip_webrtc', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_supervisors_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_supervisors')),
        sa.UniqueConstraint('sip_extension', name=op.f('uq_supervisors_sip_extension')),
        sa.UniqueConstraint('user_id', name=op.f('uq_supervisors_user_id')),
    )


def downgrade():
    op.drop_table('supervisors')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('recording_file')
    op.drop_index('ix_contacts_database_id', table_name='contacts')
    op.drop_index('ix_calls_campaign_created', table_name='calls')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('last_agent_id')
        batch_op.drop_column('strategy')
        batch_op.drop_column('record')
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('status_since')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('group')
