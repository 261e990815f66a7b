"""The `pattern` constraints of the service models, which are Java regular expressions.

They are matched as Java's `String.matches` does: against the whole value. The `regex` module
understands Java's Unicode classes (`\\p{L}`); what it reads differently is translated first.
"""

from __future__ import annotations

from functools import cache

import regex

# Java spellings with another meaning (or none) in `regex`, as they may appear inside a class.
_INSIDE_CLASS = {
    "\\uD800\\uDC00-\\uDBFF\\uDFFF": "\\U00010000-\\U0010FFFF",  # a surrogate-pair range
    "\\p{Alnum}": "a-zA-Z0-9",  # Java's POSIX classes are ASCII-only
    "\\p{Print}": "\\x20-\\x7E",
    "\\p{ASCII}": "\\x00-\\x7F",
}
MATCH_TIMEOUT = 0.5  # seconds: a pathological pattern must not hold a server thread


def translate(java: str) -> str:
    """The `regex` spelling of a Java pattern."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(java):
        special = next((key for key in _INSIDE_CLASS if java.startswith(key, i)), None)
        if special:
            replacement = _INSIDE_CLASS[special]
            out.append(replacement if in_class else f"[{replacement}]")
            i += len(special)
            continue
        char = java[i]
        if char == "\\":
            out.append(java[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@cache
def compiled(java: str) -> regex.Pattern[str]:
    return regex.compile(translate(java))


def matches(java: str, value: str) -> bool:
    """Whether the whole of `value` matches; a match that takes too long counts as a mismatch."""
    try:
        return compiled(java).fullmatch(value, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        return False
