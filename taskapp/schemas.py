"""Fields and schemas shared by the blueprints."""

from marshmallow import fields


class StoredString(fields.String):
    """A string the database can store: no NUL character, no unpaired surrogate.

    JSON allows both (``"\\u0000"``, ``"\\ud800"``), but PostgreSQL text refuses NUL and
    neither driver can encode a lone surrogate: unchecked, they end as a 500.
    """

    default_error_messages = {
        "unstorable": "Must not contain NUL characters or unpaired surrogates."
    }

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


class TrimmedString(StoredString):
    """A string stripped of surrounding white space before validation."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


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
