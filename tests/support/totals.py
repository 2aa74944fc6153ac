"""The kept counts of tasks.totals, checked against the rows they count."""

from taskapp.extensions import db
from taskapp.tasks import totals


def assert_kept_counts() -> None:
    """Every kept count equals its rows counted; no row stands at 0 where it should go."""
    db.session.expire_all()
    for kept in totals.KEPT:
        assert totals.kept_rows(kept) == totals.counted_rows(kept), kept.table
        if kept.at_zero == "deleted":
            assert totals.zero_rows(kept) == 0, kept.table


def kept_counts(table: str, *key) -> tuple:
    """The counts kept in ``table`` (base rows plus deltas) for one key; zeros if none."""
    db.session.expire_all()
    kept = next(kept for kept in totals.KEPT if kept.table == table)
    rows = {row[: len(key)]: row[len(key) :] for row in totals.kept_rows(kept)}
    return rows.get(key, (0,) * len(kept.counts))
