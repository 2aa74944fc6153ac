"""A function that checks an access token's session, so the check can ride with a request's
first statement instead of costing a round trip of its own.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

``taskapp_check_session(user_id, session_id)`` raises SQLSTATE TA401 unless the session exists,
is unrevoked and unexpired, and its user is active: the conditions of
``auth.service.load_session_user``. The app sends ``SELECT taskapp_check_session(...);`` in the
same message as the request's first statement (``taskapp/auth/session_check.py``); the
statements of one message are one transaction, so when it raises the statement after it never
runs. Creating a function locks no table: safe on a live database.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CHECK_SESSION = """
CREATE FUNCTION taskapp_check_session(uid integer, sid integer) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  PERFORM 1 FROM sessions AS s JOIN users AS u ON u.id = s.user_id
    WHERE s.id = sid AND u.id = uid AND u.is_active
      AND s.revoked_at IS NULL AND s.expires_at > now();
  IF NOT FOUND THEN
    RAISE EXCEPTION 'session is no longer valid' USING ERRCODE = 'TA401';
  END IF;
END $$
"""


def upgrade():
    op.execute(CHECK_SESSION)


def downgrade():
    op.execute("DROP FUNCTION taskapp_check_session(integer, integer)")
