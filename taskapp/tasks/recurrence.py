"""Recurrence rules of tasks: a subset of RFC 5545 RRULE, evaluated by python-dateutil.

A rule is evaluated in UTC, from the task's due date: BYDAY and BYMONTHDAY name UTC days,
and each occurrence keeps the due date's UTC time of day. COUNT counts the occurrences still
to come, the current one included: completing the task moves it to the next occurrence and
lowers COUNT by one, so the task completes for good at COUNT=1 (or when no occurrence is left
before UNTIL).
"""

import re
from datetime import UTC, datetime

from dateutil.rrule import rrule, rrulestr

FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "COUNT", "UNTIL"}
# UNTIL in UTC (as RFC 5545 requires with a UTC start), or a date.
_UNTIL = re.compile(r"^\d{8}(T\d{6}Z)?$")
_EXAMPLE_START = datetime(2000, 1, 1, 9, 0, tzinfo=UTC)


def parse(rule: str) -> dict[str, str]:
    """The parts of a rule, checked (ValueError naming what is wrong): only PARTS, each once,
    FREQ among FREQUENCIES, not both COUNT and UNTIL, values dateutil accepts."""
    parts: dict[str, str] = {}
    for item in rule.split(";"):
        name, equals, value = item.partition("=")
        name = name.upper()
        if not equals or not value:
            raise ValueError(f"Not NAME=VALUE: {item!r}.")
        if name not in PARTS:
            raise ValueError(f"{name} is not supported; use {', '.join(sorted(PARTS))}.")
        if name in parts:
            raise ValueError(f"{name} is given twice.")
        parts[name] = value.upper()
    if parts.get("FREQ") not in FREQUENCIES:
        raise ValueError(f"FREQ must be one of {', '.join(sorted(FREQUENCIES))}.")
    if "COUNT" in parts and "UNTIL" in parts:
        raise ValueError("Give COUNT or UNTIL, not both.")
    if "UNTIL" in parts and not _UNTIL.match(parts["UNTIL"]):
        raise ValueError("UNTIL must be a date (YYYYMMDD) or a UTC time (YYYYMMDDTHHMMSSZ).")
    for day in parts.get("BYMONTHDAY", "1").split(","):
        if not re.fullmatch(r"[+-]?\d{1,2}", day) or not 1 <= abs(int(day)) <= 31:
            raise ValueError("BYMONTHDAY days must be 1 to 31 or -31 to -1.")
    for name in ("COUNT", "INTERVAL"):
        if name in parts and not (parts[name].isdecimal() and 1 <= int(parts[name]) <= 10_000):
            raise ValueError(f"{name} must be a whole number from 1 to 10000.")
    try:
        _evaluable(parts, _EXAMPLE_START)
    except (ValueError, TypeError) as error:
        raise ValueError("Not a valid rule.") from error
    return parts


def format_rule(parts: dict[str, str]) -> str:
    """The rule text of its parts."""
    return ";".join(f"{name}={value}" for name, value in parts.items())


def _evaluable(parts: dict[str, str], start: datetime) -> rrule:
    """dateutil's rule from ``start``; an UNTIL date means through its end (UTC)."""
    if "UNTIL" in parts and "T" not in parts["UNTIL"]:
        parts = {**parts, "UNTIL": parts["UNTIL"] + "T235959Z"}
    return rrulestr(format_rule(parts), dtstart=start)


def next_occurrence(rule: str, due_at: datetime) -> tuple[datetime, str] | None:
    """The occurrence after ``due_at`` (an aware datetime) and the rule to store with it
    (COUNT lowered by one); None when the current occurrence was the last."""
    parts = parse(rule)
    left = parts.pop("COUNT", None)
    if left is not None and int(left) <= 1:
        return None
    following = _evaluable(parts, due_at.astimezone(UTC)).after(due_at)
    if following is None:
        return None
    if left is not None:
        parts["COUNT"] = str(int(left) - 1)
    return following, format_rule(parts)
