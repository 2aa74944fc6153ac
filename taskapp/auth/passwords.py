"""Password hashing with bcrypt, with constant-shape failures for login."""

import functools

import bcrypt
from flask import current_app

# bcrypt's input limit: longer passwords are refused at signup, never truncated.
MAX_PASSWORD_BYTES = 72


def _rounds() -> int:
    """The bcrypt cost (BCRYPT_ROUNDS): read here only."""
    return current_app.config["BCRYPT_ROUNDS"]


def hash_password(password: str) -> str:
    """Hash a password that the schema already limited to 72 UTF-8 bytes."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(_rounds())).decode()


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(rounds))


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password in about the same time whether or not the user exists.

    With no hash (unknown user) or a password bcrypt cannot take (over 72 bytes: bcrypt 5
    raises; a lone surrogate: no UTF-8 bytes at all), a dummy hash is checked instead so
    the answer takes as long as a real failure.
    """
    try:
        candidate = password.encode()
    except UnicodeEncodeError:
        candidate = None
    if password_hash is None or candidate is None or len(candidate) > MAX_PASSWORD_BYTES:
        bcrypt.checkpw(b"dummy-password", _dummy_hash(_rounds()))
        return False
    return bcrypt.checkpw(candidate, password_hash.encode())


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made at a lower cost than BCRYPT_ROUNDS (``$2b$<cost>$...``)."""
    try:
        cost = int(password_hash.split("$")[2])
    except (IndexError, ValueError):
        return True  # not a bcrypt hash of ours: redo it
    return cost < _rounds()
