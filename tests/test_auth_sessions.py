"""Session families: absolute expiry across rotations, and `flask tokens purge`."""

from datetime import UTC, datetime, timedelta

from flask_jwt_extended import decode_token
from sqlalchemy import select, update

from conftest import assert_error
from taskapp.auth.models import RefreshToken, Session
from taskapp.extensions import db


def refresh(client, token: str):
    return client.post("/refresh", json={"refresh_token": token})


def test_rotation_keeps_the_absolute_expiry_of_the_login(client, make_user, login):
    email, _ = make_user()
    tokens = login(email)
    first_exp = decode_token(tokens["refresh_token"])["exp"]
    session = db.session.scalars(select(Session)).one()
    family_expiry = session.expires_at
    for _ in range(3):
        response = refresh(client, tokens["refresh_token"])
        assert response.status_code == 200
        tokens = response.json
        # Issued later, yet expiring exactly with the first token of the family.
        assert decode_token(tokens["refresh_token"])["exp"] == first_exp
    db.session.expire_all()
    assert db.session.get(Session, session.id).expires_at == family_expiry


def test_a_family_past_its_absolute_expiry_cannot_refresh(client, make_user, login):
    email, _ = make_user()
    tokens = login(email)
    # The JWT itself is still valid: only the family's stored expiry has passed.
    db.session.execute(update(Session).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.session.commit()
    assert_error(refresh(client, tokens["refresh_token"]), 401)
    assert_error(
        client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}), 401
    )


def test_short_configured_lifetime_expires_the_family(app, client, make_user, login):
    email, _ = make_user()
    original = app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(seconds=30)
    try:
        tokens = login(email)
    finally:
        app.config["JWT_REFRESH_TOKEN_EXPIRES"] = original
    claims = decode_token(tokens["refresh_token"])
    assert claims["exp"] - claims["iat"] <= 30
    rotated = refresh(client, tokens["refresh_token"]).json
    assert decode_token(rotated["refresh_token"])["exp"] == claims["exp"]


def test_purge_deletes_dead_sessions_and_keeps_live_ones(runner, client, make_user, login):
    email, _ = make_user()
    for _ in range(2):  # the sessions to expire and to revoke
        login(email)
    live = login(email)
    spent_then_current = refresh(client, live["refresh_token"]).json
    sessions = db.session.scalars(select(Session).order_by(Session.id)).all()
    expired_id, revoked_id, live_id = (s.id for s in sessions)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    db.session.execute(update(Session).where(Session.id == expired_id).values(expires_at=long_ago))
    db.session.execute(update(Session).where(Session.id == revoked_id).values(revoked_at=long_ago))
    db.session.commit()

    result = runner.invoke(args=["tokens", "purge", "--batch-size", "1"])

    assert result.exit_code == 0, result.output
    assert "purged 2 session(s)" in result.output
    db.session.expire_all()
    assert [s.id for s in db.session.scalars(select(Session))] == [live_id]
    # The live family keeps its spent token (for reuse detection) and its current one.
    tokens = db.session.scalars(select(RefreshToken).where(RefreshToken.session_id == live_id))
    assert len(tokens.all()) == 2
    assert refresh(client, spent_then_current["refresh_token"]).status_code == 200


def test_purge_keeps_recently_revoked_sessions(runner, client, make_user, login):
    email, _ = make_user()
    tokens = login(email)
    assert (
        client.post("/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    )
    result = runner.invoke(args=["tokens", "purge"])
    assert result.exit_code == 0
    assert "purged 0 session(s)" in result.output
    assert db.session.scalars(select(Session)).one().revoked_at is not None
