"""Whether a name a user gives may be asked of the embedded DNS at all.

A name that is not a DNS name (an empty label as in ``a..b``, a label over
63 characters, more than 253 in all, a character outside ASCII letters,
digits and ``-``) cannot be put in a query: DNS encoders fail on it (the
IDNA codec with a traceback). It is refused here, before any encoding, with
what is wrong and a hint.
"""

from __future__ import annotations

import re

LABEL_MAX = 63
NAME_MAX = 253
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", re.ASCII)


def name_problem(name: str) -> str | None:
    """What makes ``name`` no DNS name to query (RFC 1035/1123: labels of 1 to 63
    ASCII letters, digits and inner hyphens, at most 253 characters in all, one
    trailing dot allowed), or None when it is one."""
    text = name[:-1] if name.endswith(".") else name
    if not text:
        return "is empty"
    if len(text) > NAME_MAX:
        return f"is {len(text)} characters long; a DNS name has at most {NAME_MAX}"
    for label in text.split("."):
        if not label:
            return "has an empty label (two dots in a row, or a dot at the start)"
        if len(label) > LABEL_MAX:
            return (f"has a label of {len(label)} characters ({label[:12]}…); "
                    f"a DNS label has at most {LABEL_MAX}")
        if not _LABEL.fullmatch(label):
            return (f"has the label {label[:40]!r}: a DNS label holds ASCII letters, digits "
                    "and '-', and neither starts nor ends with '-'")
    if all(label.isdigit() for label in text.split(".")):
        return "is all digits: neither an IPv4 address nor a name"
    return None
