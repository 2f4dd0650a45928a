"""job owner: the API key (or "open") that submitted a job, for the per-key active-job cap

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 15:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_jobs_owner_status', ['owner', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_index('ix_jobs_owner_status')
        batch_op.drop_column('owner')
