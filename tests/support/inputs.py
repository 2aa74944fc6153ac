"""Hostile spellings of keys, and a snapshot of every table, for the input-validation walks."""

from sqlalchemy import text

from taskapp.extensions import db

ARABIC_INDIC = str.maketrans(
    "0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
)
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + digit) for digit in range(10)))


def spellings_of(value: str) -> list[str]:
    """Other spellings of an existing row's key, each of which must name nothing."""
    if value.isdigit():
        return [
            "0" + value,
            "00" + value,
            value.translate(ARABIC_INDIC),
            value.translate(FULLWIDTH),
            "+" + value,
            value + "\x00",
        ]
    return [value + "\x00", value[:1] + "\x00" + value[1:], value + "\x7f", value * 20]


def snapshot() -> dict:
    """Every row of every table, to show that nothing changed."""
    db.session.expire_all()
    return {
        table.name: db.session.execute(text(f"SELECT * FROM {table.name} ORDER BY 1")).all()
        for table in db.metadata.sorted_tables
    }
