"""The account's security stamp, and the stamp each emailed token was issued under.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09

A password change or reset, a logout everywhere, a deactivation, a verification and an
address change move ``users.security_stamp`` on; an emailed token works only while its
``security_stamp`` is still the account's, so each of those retires every link of every
purpose at once, including one issued concurrently. Existing tokens and accounts start at 0,
so the links already sent keep working. Both columns have a constant default: adding them
rewrites neither table on PostgreSQL 11+ (a brief ACCESS EXCLUSIVE lock each, no scan).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    for table in ("users", "email_tokens"):
        op.add_column(
            table,
            sa.Column("security_stamp", sa.Integer(), server_default="0", nullable=False),
        )


def downgrade():
    for table in ("email_tokens", "users"):
        op.drop_column(table, "security_stamp")
