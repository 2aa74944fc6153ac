"""Entity tags and the If-Match / If-None-Match comparisons of RFC 9110 (sections 8.8.3, 13.1)."""

import hashlib
import re
from dataclasses import dataclass

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text (latin-1 here,
# as WSGI hands headers over). A comma is a legal etagc, so a list cannot be split on commas.
_ENTITY_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|\Z)')
_SKIP_TO_NEXT = re.compile(r"[^,]*(?:,|\Z)")


@dataclass(frozen=True)
class EntityTag:
    """An entity-tag: an opaque string, strong unless marked weak."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


def make_etag(*parts: object) -> EntityTag:
    """A strong tag that changes whenever any of ``parts`` does (a short hash, so opaque)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return EntityTag(digest[:20])


def parse(header: str) -> list[EntityTag]:
    """The entity-tags listed in an If-Match or If-None-Match value ("*" excluded).

    Malformed members (an unquoted token, a stray quote) are skipped: they can never match.
    """
    tags, position = [], 0
    while position < len(header):
        match = _ENTITY_TAG.match(header, position)
        if match is None:
            position = _SKIP_TO_NEXT.match(header, position).end()
            continue
        weak, opaque = match.groups()
        tags.append(EntityTag(opaque, weak=bool(weak)))
        position = match.end()
    return tags


def if_match_passes(header: str | None, current: EntityTag) -> bool:
    """If-Match (13.1.1): absent, "*" (the resource exists), or a strong match of ``current``.

    Strong comparison: a weak tag in the header never matches, and neither does a weak current.
    """
    if header is None or header.strip() == "*":
        return True
    return any(
        not tag.weak and not current.weak and tag.opaque == current.opaque for tag in parse(header)
    )


def if_none_match_passes(header: str | None, current: EntityTag) -> bool:
    """If-None-Match (13.1.2): false when the header is "*" or weakly matches ``current``."""
    if header is None:
        return True
    if header.strip() == "*":
        return False
    return all(tag.opaque != current.opaque for tag in parse(header))
