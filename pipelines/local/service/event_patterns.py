"""EventBridge's event patterns: checked as PutRule and TestEventPattern check them, and matched as
rules match events ("Event patterns" and "Content filtering in Amazon EventBridge event patterns" in
its user guide).

A pattern EventBridge refuses is refused in its words, which are those of Event Ruler, the library
that checks and matches its patterns; the place in the text that EventBridge appends (`at [Source:
...; line: 1, column: 21]`) is left out. Strings, numbers, booleans and null match only their own
kind: a prefix never matches a number, a numeric filter never matches a string.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import operator
import re
from collections.abc import Callable
from typing import Any

from pipelines.local.errors import ServiceError

Pattern = dict[str, Any]
OR = "$or"
# Field names Event Ruler keeps for itself, refused inside $or (its Constants.java).
RESERVED_IN_OR = frozenset({
    "exactly", "equals-ignore-case", "prefix", "suffix", "anything-but", "exists", "wildcard", "numeric",
    "cidr", "=", "<", "<=", ">", ">=", "regex", "not-wildcard", "not-equals-ignore-case", "date-after",
    "date-on-or-after", "date-before", "date-on-or-before", "in-date-range", "ip-address-in-range",
    "ip-address-not-in-range",
})
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
NUMERIC_NAMES = {"=": "equals", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
NUMERIC_LIMIT = 5e9  # numeric matching is limited to -5.0e9 .. +5.0e9
# What anything-but may negate besides values, and what it says of an operand that is not a string.
ANYTHING_BUT_FORMS = {
    "equals-ignore-case":
        "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
    "prefix": "prefix/suffix match pattern must be a string",
    "suffix": "prefix/suffix match pattern must be a string",
    "wildcard": "wildcard match pattern must be a string",
}
IPV4 = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
IPV6 = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*")
MASK = re.compile(r"[+-]?[0-9]{1,10}")


class _Invalid(Exception):
    """Why Event Ruler refuses a pattern."""


def parse(text: str) -> Pattern:
    """The pattern of a PutRule or TestEventPattern request, refused as EventBridge refuses it."""
    try:
        pattern = json.loads(text)
    except ValueError:
        raise ServiceError("InvalidEventPatternException", "EventPattern is not valid JSON.") from None
    try:
        if not isinstance(pattern, dict):
            raise _Invalid("Filter is not an object")
        _check_object(pattern, inside_or=False)
    except _Invalid as problem:
        reason = f"Event pattern is not valid. Reason: {problem}"
        raise ServiceError("InvalidEventPatternException", reason) from None
    return pattern


def _check_object(node: Pattern, inside_or: bool) -> None:
    if not node:
        raise _Invalid("Empty objects are not allowed")
    for key, value in node.items():
        if key == OR:
            _check_or(value)
        elif inside_or and key in RESERVED_IN_OR:
            raise _Invalid(f"{key} is Ruler reserved fieldName which cannot be used inside $or.")
        elif isinstance(value, dict):
            _check_object(value, inside_or)
        elif isinstance(value, list):
            _check_values(value)
        else:
            raise _Invalid(f'"{key}" must be an object or an array')


def _check_or(members: Any) -> None:
    if not isinstance(members, list):
        raise _Invalid("It must be an Array followed with $or.")
    for member in members:
        if not isinstance(member, dict):
            raise _Invalid("Only JSON object is allowed in array of $or relationship.")
        _check_object(member, inside_or=True)
    if len(members) < 2:
        raise _Invalid("There must have at least 2 Objects in $or relationship.")


def _check_values(values: list[Any]) -> None:
    for value in values:
        if isinstance(value, dict):
            _check_filter(value)
        elif isinstance(value, list):
            raise _Invalid("Match value must be String, number, true, false, or null")
    if not values:
        raise _Invalid("Empty arrays are not allowed")


def _check_filter(expression: Pattern) -> None:
    if not expression:
        raise _Invalid("Match expression name not found")
    name, operand = next(iter(expression.items()))
    check = OPERAND_CHECKS.get(name)
    if check is None:
        raise _Invalid(f"Unrecognized match type {name}")
    check(name, operand)
    if len(expression) > 1:
        raise _Invalid("Too many elements in numeric expression" if name in ("numeric", "anything-but")
                       else "Only one key allowed in match expression")


def _check_string(name: str, operand: Any) -> None:
    if not isinstance(operand, str):
        raise _Invalid(f"{name} match pattern must be a string")


def _check_affix(name: str, operand: Any) -> None:
    """prefix and suffix: a string, or {"equals-ignore-case": string}."""
    if not isinstance(operand, dict):
        _check_string(name, operand)
        return
    if not operand:
        raise _Invalid(f"{name.capitalize()} expression name not found")
    inner, value = next(iter(operand.items()))
    if inner != "equals-ignore-case":
        raise _Invalid(f"Unsupported {name} pattern: {inner}")
    _check_string(inner, value)
    if len(operand) > 1:
        raise _Invalid("Only one key allowed in match expression")


def _check_wildcard(name: str, operand: Any) -> None:
    _check_string(name, operand)
    _wildcard(operand)


def _check_exists(_: str, operand: Any) -> None:
    if not isinstance(operand, bool):
        raise _Invalid("exists match pattern must be either true or false.")


def _check_cidr(_: str, operand: Any) -> None:
    _check_string("prefix", operand)  # sic: Event Ruler's words for a cidr that is not a string
    _network(operand)


def _check_numeric(_: str, operand: Any) -> None:
    """One comparison, or a lower bound (> or >=) followed by an upper one (< or <=)."""
    if not isinstance(operand, list):
        raise _Invalid("Value of numeric must be an array.")
    first = operand[0] if operand else "]"
    if not operand or not isinstance(first, str):
        raise _Invalid(f"Invalid member in numeric match: {_token(first)}")
    if first not in NUMERIC_NAMES:
        raise _Invalid(f"Unrecognized numeric range operator: {first}")
    bottom = _bound(NUMERIC_NAMES[first], operand[1:2])
    if len(operand) == 2:
        return
    if first not in (">", ">="):
        raise _Invalid("Too many elements in numeric expression")
    second = operand[2]
    if not isinstance(second, str):
        raise _Invalid(f"Bad value in numeric range: {_token(second)}")
    if second not in ("<", "<="):
        raise _Invalid(f"Bad numeric range operator: {second}")
    top = _bound(second, operand[3:4])
    if len(operand) > 4:
        raise _Invalid("Too many terms in numeric range expression")
    if bottom >= top:
        raise _Invalid("Bottom must be less than top")


def _bound(name: str, given: list[Any]) -> float:
    if not given or not _is_number(given[0]):
        raise _Invalid(f"Value of {name} must be numeric")
    return _comparable(given[0])


def _comparable(number: float) -> float:
    if not -NUMERIC_LIMIT <= number <= NUMERIC_LIMIT:
        raise _Invalid("Value must be between -5.0E9 and 5.0E9, inclusive")
    return float(number)


def _check_anything_but(name: str, operand: Any) -> None:
    """A value or a list of values (all strings or all numbers), or one of ANYTHING_BUT_FORMS."""
    if isinstance(operand, dict):
        _check_anything_but_form(operand)
        return
    _check_single_or_list(operand)
    values = operand if isinstance(operand, list) else [operand]
    if any(not isinstance(value, str) and not _is_number(value) for value in values):
        raise _Invalid("Inside anything but list, start|null|boolean is not supported.")
    kinds = {isinstance(value, str) for value in values}
    if len(kinds) != 1:
        raise _Invalid("Inside anything but list, either all values are number or string, "
                       "mixed type is not supported")
    for value in values:
        if _is_number(value):
            _comparable(value)


def _check_anything_but_form(operand: Pattern) -> None:
    if not operand:
        raise _Invalid("Anything-But expression name not found")
    form, listed = next(iter(operand.items()))
    if form not in ANYTHING_BUT_FORMS:
        raise _Invalid(f"Unsupported anything-but pattern: {form}")
    _check_single_or_list(listed)
    for value in listed if isinstance(listed, list) else [listed]:
        if not isinstance(value, str):
            raise _Invalid(ANYTHING_BUT_FORMS[form])
        if form in ("prefix", "suffix") and not value:
            raise _Invalid("Null prefix/suffix not allowed")
        if form == "wildcard":
            _wildcard(value)
    if len(operand) > 1:
        raise _Invalid("Too many elements in numeric expression")


def _check_single_or_list(operand: Any) -> None:
    if not isinstance(operand, (list, str)) and not _is_number(operand):
        raise _Invalid("Value of anything-but must be an array or single string/number value.")


OPERAND_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "prefix": _check_affix, "suffix": _check_affix, "equals-ignore-case": _check_string,
    "wildcard": _check_wildcard, "exists": _check_exists, "cidr": _check_cidr, "numeric": _check_numeric,
    "anything-but": _check_anything_but,
}


def _token(value: Any) -> str:
    """A value as Event Ruler's parser names the token it stopped at."""
    if isinstance(value, str):
        return value
    return "[" if isinstance(value, list) else "{" if isinstance(value, dict) else json.dumps(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@functools.lru_cache(maxsize=256)
def _wildcard(text: str) -> re.Pattern[str]:
    """A wildcard as a regular expression: `*` is any run of characters, `\\*` a star, `\\\\` a
    backslash; positions are Event Ruler's, a byte offset in the quoted value."""
    parts: list[str] = []
    index = 0
    while index < len(text):
        char, following = text[index], text[index + 1:index + 2]
        if char == "*" and following == "*":
            raise _Invalid(f"Consecutive wildcard characters at pos {_position(text, index)}")
        if char == "\\" and following not in ("*", "\\"):
            raise _Invalid(f"Invalid escape character at pos {_position(text, index)}")
        if char == "\\":
            parts.append(re.escape(following))
            index += 1
        else:
            parts.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def _position(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "replace")) + 1


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not IPV4.fullmatch(text) and not IPV6.fullmatch(text):
        raise _Invalid(f"Nonstandard IP address: {text}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _Invalid(f"Invalid IP address: {text}") from None


def _network(cidr: str) -> tuple[int, int, int]:
    """(IP version, lowest, highest address) of a cidr filter: from its address up to the address with
    every host bit set, as Event Ruler reads it (`10.0.0.5/24` starts at .5, not .0)."""
    parts = cidr.split("/")
    while parts and not parts[-1]:  # as Java's split, which drops trailing empty strings
        parts.pop()
    if len(parts) != 2:
        raise _Invalid("Malformed CIDR, one '/' required")
    if not MASK.fullmatch(parts[1]) or not -2**31 <= int(parts[1]) < 2**31:
        raise _Invalid("Malformed CIDR, mask bits must be an integer")
    bits = int(parts[1])
    if bits < 0:
        raise _Invalid("Malformed CIDR, mask bits must not be negative")
    address = _address(parts[0])
    width = address.max_prefixlen
    if bits >= width:
        raise _Invalid(f"IPv{address.version} mask bits must be < {width}")
    return address.version, int(address), int(address) | ((1 << (width - bits)) - 1)


def matches(pattern: Pattern, event: Any) -> bool:
    """Whether the event has what each field of the pattern asks (and one member of each $or). A
    field the event lacks, or holds an object in place of a value, has no values: only
    `{"exists": false}` matches it. An array matches when one of its elements does. A key holding
    dots names the fields nested under its parts, in the pattern and in the event alike, as
    EventBridge joins the keys of both with dots ("Considerations when creating event patterns")."""
    return _matches(_pattern_unjoined(pattern), _unjoined(event))


def _matches(pattern: Pattern, event: Any) -> bool:
    fields = event if isinstance(event, dict) else {}
    return all(_field_matches(key, wanted, fields) for key, wanted in pattern.items())


def _unjoined(value: Any) -> Any:
    """An event's value with each dotted key split into the objects its parts name."""
    if isinstance(value, list):
        return [_unjoined(item) for item in value]
    if not isinstance(value, dict):
        return value
    nested: dict[str, Any] = {}
    for key, item in value.items():
        _place(nested, key, _unjoined(item))
    return nested


def _pattern_unjoined(pattern: Pattern) -> Pattern:
    """A pattern with each dotted key split as `_unjoined` splits an event's; its lists of values
    and filters are left as they are, and each member of an $or is split in turn."""
    nested: Pattern = {}
    for key, wanted in pattern.items():
        if key == OR:
            nested[key] = [_pattern_unjoined(member) for member in wanted]
        else:
            _place(nested, key, _pattern_unjoined(wanted) if isinstance(wanted, dict) else wanted)
    return nested


def _place(nested: dict[str, Any], key: str, value: Any) -> None:
    """`value` under the path `key`'s dots name, beside what is there; under the key itself where a
    part of that path already holds a value, not an object."""
    *outer, last = key.split(".") if key != OR else [key]
    target = nested
    for part in outer:
        found = target.setdefault(part, {})
        if not isinstance(found, dict):
            nested[key] = value
            return
        target = found
    if isinstance(value, dict) and isinstance(target.get(last), dict):
        for inner, item in value.items():
            _place(target[last], inner, item)
    else:
        target[last] = value


def _field_matches(key: str, wanted: Any, fields: dict[str, Any]) -> bool:
    if key == OR:
        return any(_matches(member, fields) for member in wanted)
    found = fields.get(key)
    if isinstance(wanted, dict):
        candidates = [i for i in found if isinstance(i, dict)] if isinstance(found, list) else [found]
        return any(_matches(wanted, candidate) for candidate in candidates or [None])
    values = _leaves(found) if key in fields else []
    return any(_allows(allowed, values) for allowed in wanted)


def _leaves(found: Any) -> list[Any]:
    if isinstance(found, list):
        return [leaf for item in found for leaf in _leaves(item)]
    return [] if isinstance(found, dict) else [found]


def _allows(allowed: Any, values: list[Any]) -> bool:
    if not isinstance(allowed, dict):
        return any(_equal(allowed, value) for value in values)
    name, operand = next(iter(allowed.items()))
    if name == "exists":
        return bool(values) is operand
    return any(_filter_matches(name, operand, value) for value in values)


def _equal(allowed: Any, value: Any) -> bool:
    """A number equals any number of the same value (3 and 3.0); anything else only its own kind."""
    if _is_number(allowed):
        return _is_number(value) and bool(value == allowed)
    return type(allowed) is type(value) and bool(allowed == value)


def _filter_matches(name: str, operand: Any, value: Any) -> bool:
    if name == "numeric":
        comparisons = zip(operand[::2], operand[1::2], strict=True)
        return _is_number(value) and all(COMPARISONS[compare](value, bound) for compare, bound in comparisons)
    if name == "anything-but":
        return not _excluded(operand, value)
    return isinstance(value, str) and STRING_FILTERS[name](operand, value)


def _excluded(operand: Any, value: Any) -> bool:
    """Whether anything-but's operand names this value, so that it does not match."""
    if isinstance(operand, dict):
        form, listed = next(iter(operand.items()))
        return any(_filter_matches(form, item, value) for item in _listed(listed))
    return any(_equal(item, value) for item in _listed(operand))


def _listed(operand: Any) -> list[Any]:
    return operand if isinstance(operand, list) else [operand]


def _folded(operand: Any, text: str) -> tuple[str, str]:
    """prefix and suffix compare as given, or both lower-cased under {"equals-ignore-case": ...}."""
    if isinstance(operand, dict):
        return operand["equals-ignore-case"].lower(), text.lower()
    return operand, text


def _prefix(operand: Any, text: str) -> bool:
    wanted, compared = _folded(operand, text)
    return compared.startswith(wanted)


def _suffix(operand: Any, text: str) -> bool:
    wanted, compared = _folded(operand, text)
    return compared.endswith(wanted)


def _in_network(cidr: str, text: str) -> bool:
    version, lowest, highest = _network(cidr)
    try:
        address = _address(text)
    except _Invalid:
        return False
    return address.version == version and lowest <= int(address) <= highest


STRING_FILTERS: dict[str, Callable[[Any, str], bool]] = {
    "prefix": _prefix,
    "suffix": _suffix,
    "equals-ignore-case": lambda operand, text: operand.lower() == text.lower(),
    "wildcard": lambda operand, text: _wildcard(operand).fullmatch(text) is not None,
    "cidr": _in_network,
}
