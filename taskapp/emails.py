"""Email addresses in their one stored spelling: one mailbox, one account, one rate-limit key.

Every entry point that takes an email (signup, login, the email routes, their rate-limit keys,
the admin CLI) goes through ``normalise_email``. What it cannot fold into that spelling it
refuses: syntax by which several spellings reach one mailbox (quoted local parts, backslash
escapes, comments, RFC 2047 encoded words, address literals).
"""

import unicodedata

import idna

# Unicode's Default_Ignorable_Code_Point ranges that are not in a C* or Z* category (those are
# refused by category): characters that render as nothing, so "a\u034fb" looks like "ab".
_INVISIBLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x2800, 0x2800),  # Braille blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0x1D173, 0x1D17A),  # musical formatting
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement
)


# Refused anywhere in an address, each with why. The quoted form ("victim"@, "\victim"@) and
# comments (victim(x)@) are other spellings of a dot-atom mailbox; encoded words (=?utf-8?q?...?=)
# are decoded by some relays and clients; an address literal (@[192.0.2.1]) names a host the
# domain also names. None belongs to an address anyone types for an account.
_ALTERNATIVE_SYNTAX = (
    ('"', "Quoted local parts are not accepted: write the address without quotes."),
    ("\\", "Backslashes are not accepted."),
    ("(", "Comments (parentheses) are not accepted."),
    (")", "Comments (parentheses) are not accepted."),
    ("=?", "Encoded words (=?...?=) are not accepted."),
    ("[", "Address literals ([...]) are not accepted: use the domain name."),
    ("]", "Address literals ([...]) are not accepted: use the domain name."),
)


class InvalidEmail(ValueError):
    """The text cannot be an email address of an account; the message says why."""


def _invisible(char: str) -> bool:
    # C*: control, format (zero-width space, bidi overrides, soft hyphen), surrogate, private
    # use, unassigned; Z*: spaces and separators, none of which belongs inside an address.
    if unicodedata.category(char)[0] in "CZ":
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def normalise_email(text: str) -> str:
    """``text`` trimmed, NFKC-normalised and lower-cased, its domain IDNA-encoded (ASCII).

    Raises InvalidEmail for invisible or control characters (a space inside included), for
    another syntax of a mailbox (``_ALTERNATIVE_SYNTAX``) and for a domain IDNA refuses.
    Whether the result is a deliverable address is the schema's check.
    """
    text = unicodedata.normalize("NFKC", text.strip()).lower()
    if any(_invisible(char) for char in text):
        raise InvalidEmail("Must not contain invisible, space or control characters.")
    for sequence, reason in _ALTERNATIVE_SYNTAX:
        if sequence in text:
            raise InvalidEmail(reason)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return text  # not an address at all: the schema's validator says so
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise InvalidEmail("The domain is not a valid internationalised domain name.") from None
    return f"{local}@{domain}"
