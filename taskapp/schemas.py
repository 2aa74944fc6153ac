"""Fields and schemas shared by the blueprints."""

from marshmallow import fields, validate

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
