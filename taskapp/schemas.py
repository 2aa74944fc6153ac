"""Fields and schemas shared by the blueprints."""

from marshmallow import fields


class TrimmedString(fields.String):
    """A string stripped of surrounding white space before validation."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class StrictBoolean(fields.Boolean):
    """Only JSON true/false in bodies (marshmallow would also take 1, "yes", ...)."""

    truthy = {True}
    falsy = {False}


class QueryBoolean(fields.Boolean):
    """Only the strings true/false in a query string."""

    truthy = {"true"}
    falsy = {"false"}
