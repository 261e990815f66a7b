"""CloudWatch Logs' filter patterns for terms in unstructured events, as FilterLogEvents reads them.

A pattern is terms separated by spaces: a plain term (`ERROR`) or a quoted phrase (`"Exiting with"`)
must occur in the message, case-sensitively and anywhere in it (`ERROR` matches `ERRORCODE`); a
`-term` must not occur; `?term ?other` matches a message that holds any of them. An empty pattern
matches everything. The other syntaxes (JSON `{ $.x = ... }`, space-delimited `[a, b]`, `%regex%`)
and `?` terms mixed with others are refused by name, never matched loosely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.local.errors import ServiceError

TERM = re.compile(r'\s*(?P<sign>[?-]?)(?:"(?P<phrase>(?:[^"\\]|\\.)*)"|(?P<word>[^\s"]+))')
OTHER_SYNTAXES = {
    "{": "JSON filter patterns ({ $.field ... })",
    "[": "space-delimited filter patterns ([field, ...])",
    "%": "regular expression filter patterns (%...%)",
}


def unsupported(what: str) -> ServiceError:
    return ServiceError(
        "InvalidParameterException",
        f"The local target does not evaluate {what}; it matches terms, quoted phrases, -terms and ?terms.",
    )


@dataclass(frozen=True)
class FilterPattern:
    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    @classmethod
    def parse(cls, pattern: str) -> FilterPattern:
        text = pattern.strip()
        if text[:1] in OTHER_SYNTAXES:
            raise unsupported(OTHER_SYNTAXES[text[:1]])
        terms: dict[str, list[str]] = {"": [], "-": [], "?": []}
        position = 0
        while position < len(text):
            match = TERM.match(text, position)
            if match is None:
                raise ServiceError("InvalidParameterException", "Invalid character(s) in term")
            phrase = match.group("phrase")
            term = re.sub(r"\\(.)", r"\1", phrase) if phrase is not None else match.group("word")
            terms[match.group("sign")].append(term)
            position = match.end()
            while position < len(text) and text[position].isspace():
                position += 1
        if terms["?"] and (terms[""] or terms["-"]):
            raise unsupported("?terms mixed with other terms")
        return cls(tuple(terms[""]), tuple(terms["-"]), tuple(terms["?"]))

    def matches(self, message: str) -> bool:
        if self.any_of:
            return any(term in message for term in self.any_of)
        return all(term in message for term in self.required) and not any(
            term in message for term in self.excluded
        )
