"""CRM: external sites and their authentications, webhooks, the deliveries log and the
outbox cursor; campaigns.external_site_id / crm_parameters, disposition_options.crm_interaction

Revision ID: crm_sites_webhooks_deliveries
Revises: supervision_agent_states
Create Date: 2026-11-30 16:17:29.458215

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'crm_sites_webhooks_deliveries'
down_revision = 'supervision_agent_states'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('destination', sa.String(length=24), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('order_key', sa.String(length=48), nullable=True),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=True),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('authentication_id', sa.Integer(), nullable=True),
    sa.Column('secret', sa.String(length=256), nullable=True),
    sa.Column('verify_tls', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('destination', 'key', name=op.f('uq_deliveries_destination_key'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_deliveries_open', ['destination', 'order_key', 'id'], unique=False,
                              postgresql_where=sa.text("state IN ('pending', 'sending')"),
                              sqlite_where=sa.text("state IN ('pending', 'sending')"))

    op.create_table('external_site_authentications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('nombre', sa.String(length=128), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('password', sa.String(length=1024), nullable=False),
    sa.Column('campo_token', sa.String(length=128), nullable=False),
    sa.Column('duracion', sa.Integer(), nullable=False),
    sa.Column('campo_duracion', sa.String(length=128), nullable=True),
    sa.Column('ssl_estricto', sa.Boolean(), nullable=False),
    sa.Column('token', sa.Text(), nullable=True),
    sa.Column('token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_site_authentications')),
    sa.UniqueConstraint('nombre', name=op.f('uq_external_site_authentications_nombre'))
    )
    op.create_table('outbox_cursors',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('last_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_outbox_cursors'))
    )
    op.create_table('webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('secret', sa.String(length=256), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks'))
    )
    op.create_table('external_sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('nombre', sa.String(length=128), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('oculto', sa.Boolean(), nullable=False),
    sa.Column('disparador', sa.Integer(), nullable=False),
    sa.Column('metodo', sa.Integer(), nullable=False),
    sa.Column('formato', sa.Integer(), nullable=True),
    sa.Column('objetivo', sa.Integer(), nullable=True),
    sa.Column('autenticacion_id', sa.Integer(), nullable=True),
    sa.Column('signing_secret', sa.String(length=256), nullable=True),
    sa.ForeignKeyConstraint(['autenticacion_id'], ['external_site_authentications.id'], name=op.f('fk_external_sites_autenticacion_id_external_site_authentications'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_sites')),
    sa.UniqueConstraint('nombre', name=op.f('uq_external_sites_nombre'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_site_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('crm_parameters', sa.JSON(), server_default='[]', nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_campaigns_external_site_id_external_sites'), 'external_sites', ['external_site_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('disposition_options', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crm_interaction', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade():
    with op.batch_alter_table('disposition_options', schema=None) as batch_op:
        batch_op.drop_column('crm_interaction')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_campaigns_external_site_id_external_sites'), type_='foreignkey')
        batch_op.drop_column('crm_parameters')
        batch_op.drop_column('external_site_id')

    op.drop_table('external_sites')
    op.drop_table('webhooks')
    op.drop_table('outbox_cursors')
    op.drop_table('external_site_authentications')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_open')
        batch_op.drop_index('ix_deliveries_due')

    op.drop_table('deliveries')
