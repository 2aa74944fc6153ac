"""Recurrence rules of tasks: a subset of RFC 5545 RRULE, evaluated here within a fixed budget.

A rule is evaluated in UTC, from the task's due date: BYDAY and BYMONTHDAY name UTC days,
and each occurrence keeps the due date's UTC time of day. COUNT counts the occurrences still
to come, the current one included: completing the task moves it to the next occurrence and
lowers COUNT by one, so the task completes for good at COUNT=1 (or when no occurrence is left
before UNTIL).

Why not dateutil's rrule: it walks period after period until one yields an occurrence, and a
rule that never matches (FREQ=DAILY;INTERVAL=7;BYDAY=TU from a Monday) walks to the year
9999, over half a second of CPU per evaluation. Here each period looked at and each candidate
day in it is one step, and an evaluation stops after BUDGET steps: a rule is accepted only if
its next occurrence is found within them (``check``), so no client-supplied rule costs more.
The semantics are RFC 5545's (WKST=MO), as dateutil has them for this subset, except that a
BYDAY mixing ordinals and plain days is their union, as the RFC says.
"""

import re
from calendar import monthrange
from collections.abc import Iterator
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from typing import NamedTuple

FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "COUNT", "UNTIL"}
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_NUMBER = 10_000  # of INTERVAL and COUNT
# Steps (periods looked at, candidate days in them) one evaluation may take: a few
# milliseconds. The rarest rules a person means need a few hundred (FREQ=DAILY;BYDAY=FR;
# BYMONTHDAY=13, 14 months apart at most: about 430).
BUDGET = 1_000
# Ordinals of BYDAY (RFC 5545: 1 to 53, within the year; a month has at most 5 of a weekday).
MAX_ORDINAL = {"MONTHLY": 5, "YEARLY": 53}
_NUMBER = re.compile(r"[0-9]{1,5}", re.ASCII)
_MONTHDAY = re.compile(r"[+-]?[0-9]{1,2}", re.ASCII)
_BYDAY = re.compile(r"(?P<ordinal>[+-]?[0-9]{1,2})?(?P<day>MO|TU|WE|TH|FR|SA|SU)", re.ASCII)
# UNTIL in UTC (as RFC 5545 requires with a UTC start), or a date.
_UNTIL = re.compile(r"[0-9]{8}(T[0-9]{6}Z)?", re.ASCII)
NOT_FOUND = (
    "No next occurrence of this rule after due_at is found within the evaluation limit "
    f"({BUDGET} steps) or before the year {MAXYEAR + 1}: the rule never matches, or too rarely."
)


class Unbounded(ValueError):
    """The next occurrence is not found within BUDGET steps, or would pass the year 9999."""


class Rule(NamedTuple):
    """A parsed rule: weekdays as (0 for Monday .. 6, ordinal or None)."""

    freq: str
    interval: int
    weekdays: tuple[tuple[int, int | None], ...]
    monthdays: tuple[int, ...]
    until: datetime | None


def parse(rule: str) -> dict[str, str]:
    """The parts of a rule, checked and in canonical spelling (ValueError naming what is
    wrong): ASCII, only PARTS, each once, FREQ among FREQUENCIES, not both COUNT and UNTIL,
    every number in RFC 5545's range."""
    if not rule.isascii():
        raise ValueError("A rule is ASCII text (digits 0 to 9).")
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
        raise ValueError(f"FREQ must be one of {', '.join(FREQUENCIES)}.")
    if "COUNT" in parts and "UNTIL" in parts:
        raise ValueError("Give COUNT or UNTIL, not both.")
    for name in ("COUNT", "INTERVAL"):
        if name in parts:
            parts[name] = str(_number(parts[name], name, 1, MAX_NUMBER))
    _until(parts)
    _monthdays(parts)
    _weekdays(parts)
    return parts


def format_rule(parts: dict[str, str]) -> str:
    """The rule text of its parts."""
    return ";".join(f"{name}={value}" for name, value in parts.items())


def check(rule: str, due_at: datetime) -> None:
    """ValueError unless the rule's next occurrence after ``due_at`` is found within BUDGET
    (or UNTIL ends the rule first): the test every rule passes where it is accepted."""
    occurrence_after(compile_rule(parse(rule)), due_at)


def next_occurrence(rule: str, due_at: datetime) -> tuple[datetime, str] | None:
    """The occurrence after ``due_at`` (an aware datetime) and the rule to store with it
    (COUNT lowered by one); None when the current occurrence was the last, or when the next
    cannot be found within BUDGET or before the year 10000 (the series ends there)."""
    parts = parse(rule)
    left = parts.pop("COUNT", None)
    if left is not None and int(left) <= 1:
        return None
    try:
        following = occurrence_after(compile_rule(parts), due_at)
    except Unbounded:
        return None
    if following is None:
        return None
    if left is not None:
        parts["COUNT"] = str(int(left) - 1)
    return following, format_rule(parts)


def compile_rule(parts: dict[str, str]) -> Rule:
    """The Rule of checked parts (from ``parse``)."""
    weekdays = []
    for item in filter(None, parts.get("BYDAY", "").split(",")):
        found = _BYDAY.fullmatch(item)
        ordinal = found["ordinal"]
        weekdays.append((WEEKDAYS.index(found["day"]), int(ordinal) if ordinal else None))
    monthdays = tuple(int(day) for day in filter(None, parts.get("BYMONTHDAY", "").split(",")))
    return Rule(
        freq=parts["FREQ"],
        interval=int(parts.get("INTERVAL", "1")),
        weekdays=tuple(weekdays),
        monthdays=monthdays,
        until=_until(parts),
    )


def occurrence_after(rule: Rule, due_at: datetime, *, budget: int = BUDGET) -> datetime | None:
    """The rule's first occurrence after ``due_at``, evaluated from it; None when UNTIL ends
    the rule first; Unbounded when it takes more than ``budget`` steps or passes year 9999."""
    start = due_at.astimezone(UTC)
    steps = 0
    for first, last in _periods(rule, start.date()):
        if rule.until is not None and datetime.combine(first, start.timetz()) > rule.until:
            return None
        days, looked_at = _days(rule, start.date(), first, last)
        steps += 1 + looked_at
        for day in days:
            moment = datetime.combine(day, start.timetz())
            if moment <= start:
                continue
            if rule.until is not None and moment > rule.until:
                return None
            return moment
        if steps >= budget:
            raise Unbounded(NOT_FOUND)
    raise Unbounded(NOT_FOUND)


def _periods(rule: Rule, start: date) -> Iterator[tuple[date, date]]:
    """The first and last day of each period of the rule from the one holding ``start``, every
    INTERVAL-th, until the calendar ends (year 9999)."""
    step = rule.interval
    if rule.freq in ("DAILY", "WEEKLY"):
        length = 1 if rule.freq == "DAILY" else 7
        first = start if rule.freq == "DAILY" else start - timedelta(days=start.weekday())
        while True:
            yield first, first + timedelta(days=length - 1)
            if (date.max - first).days < step * length + length - 1:
                return
            first += timedelta(days=step * length)
    months = 1 if rule.freq == "MONTHLY" else 12
    index = start.year * 12 + (start.month - 1 if months == 1 else 0)
    while index // 12 <= MAXYEAR:
        year, month = divmod(index, 12)
        if months == 1:
            yield date(year, month + 1, 1), date(year, month + 1, monthrange(year, month + 1)[1])
        else:
            yield date(year, 1, 1), date(year, 12, 31)
        index += step * months


def _days(rule: Rule, start: date, first: date, last: date) -> tuple[list[date], int]:
    """The days of the period [first, last] on which the rule occurs, in order; and the
    number of candidate days looked at (the steps they cost)."""
    plain = {weekday for weekday, _ordinal in rule.weekdays}
    if rule.freq == "DAILY":
        if plain and first.weekday() not in plain:
            return [], 1
        return ([first] if not rule.monthdays or _on_monthday(first, rule.monthdays) else []), 1
    if rule.freq == "WEEKLY":
        # No BYDAY: DTSTART's weekday, unless BYMONTHDAY chooses the days (then any weekday).
        chosen = sorted(plain) or (range(7) if rule.monthdays else [start.weekday()])
        days = [first + timedelta(days=weekday) for weekday in chosen]
        kept = [day for day in days if not rule.monthdays or _on_monthday(day, rule.monthdays)]
        return kept, len(days)
    if not rule.weekdays and not rule.monthdays:
        # As RFC 5545 leaves it to DTSTART: its day of the month (and month, for YEARLY).
        month = first.month if rule.freq == "MONTHLY" else start.month
        if start.day > monthrange(first.year, month)[1]:
            return [], 1
        return [date(first.year, month, start.day)], 1
    if rule.weekdays:
        chosen = _weekdays_of(first, last, rule.weekdays)
        if not rule.monthdays:
            return sorted(chosen), len(chosen)
    months = [first.month] if rule.freq == "MONTHLY" else range(1, 13)
    days = sorted(
        day for month in months for day in _monthdays_of(first.year, month, rule.monthdays)
    )
    if rule.weekdays:
        return [day for day in days if day in chosen], len(days) + len(chosen)
    return days, len(days)


def _on_monthday(day: date, monthdays: tuple[int, ...]) -> bool:
    return day in _monthdays_of(day.year, day.month, monthdays)


def _monthdays_of(year: int, month: int, monthdays: tuple[int, ...]) -> set[date]:
    """The days of the month that BYMONTHDAY names (negative: from its end)."""
    length = monthrange(year, month)[1]
    numbers = {day if day > 0 else length + 1 + day for day in monthdays}
    return {date(year, month, number) for number in numbers if 1 <= number <= length}


def _weekdays_of(first: date, last: date, weekdays) -> set[date]:
    """The days of [first, last] that BYDAY names: every such weekday, or the n-th (from the
    end when negative) of the span."""
    days = set()
    for weekday, ordinal in weekdays:
        earliest = first + timedelta(days=(weekday - first.weekday()) % 7)
        if ordinal is None:
            days.update(
                earliest + timedelta(weeks=week) for week in range((last - earliest).days // 7 + 1)
            )
            continue
        if ordinal > 0:
            day = earliest + timedelta(weeks=ordinal - 1)
        else:
            latest = last - timedelta(days=(last.weekday() - weekday) % 7)
            day = latest - timedelta(weeks=-ordinal - 1)
        if first <= day <= last:
            days.add(day)
    return days


def _number(text: str, name: str, low: int, high: int) -> int:
    """A decimal number of ASCII digits from ``low`` to ``high`` (ValueError otherwise)."""
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}.")
    return int(text)


def _until(parts: dict[str, str]) -> datetime | None:
    """UNTIL as a UTC instant (a date: through its end), checked."""
    text = parts.get("UNTIL")
    if text is None:
        return None
    message = "UNTIL must be a date (YYYYMMDD) or a UTC time (YYYYMMDDTHHMMSSZ)."
    if not _UNTIL.fullmatch(text):
        raise ValueError(message)
    try:
        if "T" in text:
            return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return datetime.strptime(text + "235959", "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(message) from None


def _monthdays(parts: dict[str, str]) -> None:
    """BYMONTHDAY: 1 to 31 or -31 to -1 (RFC 5545), canonical."""
    if "BYMONTHDAY" not in parts:
        return
    days = []
    for item in parts["BYMONTHDAY"].split(","):
        if not _MONTHDAY.fullmatch(item) or not 1 <= abs(int(item)) <= 31:
            raise ValueError("BYMONTHDAY days must be 1 to 31 or -31 to -1.")
        days.append(str(int(item)))
    parts["BYMONTHDAY"] = ",".join(days)


def _weekdays(parts: dict[str, str]) -> None:
    """BYDAY: weekdays (MO to SU), with an ordinal (1 to 5 in a month, 1 to 53 in a year; from
    the end when negative) only in MONTHLY and YEARLY rules, as RFC 5545 says; canonical."""
    if "BYDAY" not in parts:
        return
    limit = MAX_ORDINAL.get(parts["FREQ"])
    days = []
    for item in parts["BYDAY"].split(","):
        found = _BYDAY.fullmatch(item)
        if found is None:
            raise ValueError("BYDAY days are MO, TU, WE, TH, FR, SA, SU, with an ordinal or not.")
        ordinal = found["ordinal"]
        if ordinal is not None:
            if limit is None:
                raise ValueError("BYDAY ordinals are only for FREQ=MONTHLY or FREQ=YEARLY.")
            if not 1 <= abs(int(ordinal)) <= limit:
                raise ValueError(
                    f"BYDAY ordinals of a {parts['FREQ']} rule are 1 to {limit} or -{limit} to -1."
                )
            days.append(f"{int(ordinal)}{found['day']}")
        else:
            days.append(found["day"])
    parts["BYDAY"] = ",".join(days)
