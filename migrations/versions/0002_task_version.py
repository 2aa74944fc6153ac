"""Task version counter: optimistic concurrency (ETag, If-Match) on tasks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    # Existing tasks start at version 1, as new ones do. A constant default: no table rewrite
    # on PostgreSQL 11+, so the brief ACCESS EXCLUSIVE lock is safe on a live table.
    op.add_column(
        "tasks",
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
    )


def downgrade():
    op.drop_column("tasks", "version")
