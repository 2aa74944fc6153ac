"""Fields and schemas shared by the blueprints."""

import re

from marshmallow import fields, validate

# Row ids are PostgreSQL integers (int4), from 1: in bodies, queries and paths alike.
MAX_ID = 2_147_483_647
# A positive integer as a query string or a path spells it: ASCII digits, no leading zero.
POSITIVE_DIGITS = r"[1-9][0-9]*"
_POSITIVE_DIGITS = re.compile(POSITIVE_DIGITS)

# The most labels one task carries: the labels fields' bound, and the stored rows' (quotas).
LABELS_PER_TASK = 20

# Patterns in the spec (JSON Schema: ECMA-262 regular expressions, found anywhere unless
# anchored). NUL is spelled \x00 so that the spec shows the escape, not the character.
NO_NUL_PATTERN = r"^[^\x00]*$"
# What str.strip() removes (str.isspace()), so what TrimmedString trims.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


class StoredString(fields.String):
    """A string the database can store: no NUL character, no unpaired surrogate.

    JSON allows both (``"\\u0000"``, ``"\\ud800"``), but PostgreSQL text refuses NUL and
    neither driver can encode a lone surrogate: unchecked, they end as a 500. The spec states
    the first as a pattern; the second no JSON Schema can (nor can most JSON libraries send it).
    """

    default_error_messages = {
        "unstorable": "Must not contain NUL characters or unpaired surrogates."
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if "format" not in self.metadata:  # a format states the whole rule
            self.metadata = {"pattern": NO_NUL_PATTERN, **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text or not _encodes_as_utf8(text):
            raise self.make_error("unstorable")
        return text


def _encodes_as_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def trimmed_pattern(lengths: list[validate.Length]) -> str:
    """A pattern for strings that, once trimmed, meet ``lengths`` and hold no NUL."""
    low = max((check.min or 0 for check in lengths), default=0)
    high = min((check.max for check in lengths if check.max is not None), default=None)
    solid, anything = rf"[^{_SPACE}\x00]", r"[^\x00]"
    if high == 1:
        trimmed = solid
    else:
        middle = f"{anything}{{{max(low - 2, 0)},{'' if high is None else high - 2}}}"
        trimmed = f"{solid}{middle}{solid}" if low >= 2 else f"{solid}(?:{middle}{solid})?"
    if low == 0:
        trimmed = f"(?:{trimmed})?"
    return rf"^[{_SPACE}]*{trimmed}[{_SPACE}]*$"


class TrimmedString(StoredString):
    """A string stripped of surrounding white space before validation.

    Its ``validate.Length`` counts the trimmed string, which minLength and maxLength (counting
    the string as sent) cannot state: the field checks it itself, after trimming, and the spec
    gets the exact rule as a pattern instead (white space around, the bounds between the first
    and the last other character, no NUL).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lengths = [check for check in self.validators if isinstance(check, validate.Length)]
        self.validators = [check for check in self.validators if check not in self.lengths]
        self.metadata = {**self.metadata, "pattern": trimmed_pattern(self.lengths)}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        for check in self.lengths:
            check(text)
        return text


class StrictBoolean(fields.Boolean):
    """Only JSON true/false in bodies (marshmallow would also take 1, "yes", ...)."""

    truthy = {True}
    falsy = {False}

    def _deserialize(self, value, attr, data, **kwargs):
        # 1 == True and hash(1) == hash(True): the set lookups alone would take 1, 0 and 1.0.
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class QueryBoolean(fields.Boolean):
    """Only the strings true/false in a query string."""

    truthy = {"true"}
    falsy = {"false"}


class QueryInteger(fields.Integer):
    """A positive integer in a query string or a path, in its one spelling: ASCII digits
    without a leading zero (int(), marshmallow's parser, also takes "01", " 1", "+1", "1_0"
    and other scripts' digits, "\u0663" and "\uff11": other spellings of one number)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _POSITIVE_DIGITS.fullmatch(value):
            raise self.make_error("invalid", input=value)
        # A bound before int(): a 10,000-digit value costs no conversion (nor its limit's error).
        if len(value) > len(str(MAX_ID)):
            raise self.make_error("too_large", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class QueryId(QueryInteger):
    """A row id in a query string or a path: a QueryInteger from 1 to MAX_ID."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


class Id(fields.Integer):
    """A row id in a JSON body: an integer (not a string, a float or a boolean), 1 to MAX_ID."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)
