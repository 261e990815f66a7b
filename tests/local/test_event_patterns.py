"""EventBridge's event patterns: each content filter matching and not matching as EventBridge
documents it, and each malformed filter refused in EventBridge's words."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pipelines.local.errors import ServiceError
from pipelines.local.service.event_patterns import matches, parse

MIXED = "Inside anything but list, either all values are number or string, mixed type is not supported"


def match(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether the pattern, checked as PutRule checks it, matches the event."""
    return matches(parse(json.dumps(pattern)), event)


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"a": ["x"]}, {"a": "x"}, True),
        ({"a": ["x", "y"]}, {"a": "y"}, True),
        ({"a": ["x"]}, {"a": "z"}, False),
        ({"a": ["x"]}, {}, False),
        ({"d": {"g": ["1"]}}, {"d": {"g": "1", "h": "2"}}, True),
        ({"d": {"g": ["1"]}}, {"d": {"g": "2"}}, False),
        ({"a": ["x"]}, {"a": ["w", "x"]}, True),
        ({"a": [3]}, {"a": 3.0}, True),  # numbers by value
        ({"a": [3]}, {"a": "3"}, False),  # a string is not a number
        ({"a": [True]}, {"a": 1}, False),
        ({"a": [None]}, {"a": None}, True),
        ({"a": [""]}, {"a": ""}, True),
        ({"d": {"g": ["1"]}}, {"d": [{"g": "2"}, {"g": "1"}]}, True),  # an array of objects
        ({"d": {"g": ["1"]}}, {"d": "g"}, False),
    ],
)
def test_values_match_as_eventbridge_does(pattern: Any, event: Any, expected: bool) -> None:
    assert match(pattern, event) is expected


@pytest.mark.parametrize(
    ("allowed", "matching", "other"),
    [
        ({"prefix": "us-"}, "us-east-1", "eu-west-1"),
        ({"prefix": "us-"}, ["eu-west-1", "us-east-1"], ["eu-west-1"]),  # any element of an array
        ({"prefix": ""}, "anything", 5),  # an empty prefix: any string
        ({"prefix": {"equals-ignore-case": "EventB"}}, "eventbridge", "event bus"),
        ({"suffix": ".png"}, "image.png", "image.PNG"),
        ({"suffix": {"equals-ignore-case": ".png"}}, "IMAGE.PNG", "image.jpg"),
        ({"equals-ignore-case": "alice"}, "ALICE", "alicia"),
        ({"wildcard": "dir/*.png"}, "dir/a/b.png", "other/a.png"),
        ({"wildcard": "*/lib/*"}, "/usr/lib/x", "/usr/local/x"),
        ({"wildcard": "a\\*b"}, "a*b", "axb"),  # an escaped star is a star
        ({"wildcard": "a\\\\b"}, "a\\b", "ab"),
        ({"anything-but": "initializing"}, "running", "initializing"),
        ({"anything-but": ["stopped", "overloaded"]}, "running", "stopped"),
        ({"anything-but": ["stopped", "overloaded"]}, ["stopped", "running"], ["stopped", "overloaded"]),
        ({"anything-but": 123}, 124, 123.0),
        ({"anything-but": [100, 200]}, 150, 200),
        ({"anything-but": {"prefix": "us-"}}, "eu-west-1", "us-east-1"),
        ({"anything-but": {"prefix": ["us-", "eu-"]}}, "ap-south-1", "eu-west-1"),
        ({"anything-but": {"suffix": ".png"}}, "a.jpg", "a.png"),
        ({"anything-but": {"equals-ignore-case": "initializing"}}, "running", "INITIALIZING"),
        ({"anything-but": {"equals-ignore-case": ["a", "b"]}}, "c", "B"),
        ({"anything-but": {"wildcard": "*/lib/*"}}, "/usr/local/x", "/usr/lib/x"),
        ({"anything-but": {"wildcard": ["*.png", "*.jpg"]}}, "a.gif", "a.jpg"),
        ({"numeric": [">", 0, "<=", 5]}, 5, 0),
        ({"numeric": [">=", 0, "<", 5]}, 0, 5),
        ({"numeric": ["<", 10]}, -3.5, 10),
        ({"numeric": ["<=", 10]}, 10, 10.5),
        ({"numeric": [">", 10]}, 11, 10),
        ({"numeric": [">=", 10]}, 10, 9.99),
        ({"numeric": ["=", 3.018e2]}, 301.8, 301),
        ({"numeric": [">", 0]}, 1, "1"),  # numeric matches numbers only
        ({"numeric": [">", 0]}, [-1, 1], [-1, -2]),
        ({"cidr": "10.0.0.0/24"}, "10.0.0.255", "10.0.1.0"),
        ({"cidr": "10.0.0.5/24"}, "10.0.0.5", "10.0.0.4"),  # from its address up, as EventBridge reads it
        ({"cidr": "0.0.0.0/0"}, "192.168.1.1", "::1"),
        ({"cidr": "2001:db8::/32"}, "2001:db8:ffff::1", "2001:db9::1"),
        ({"cidr": "10.0.0.0/8"}, "10.1.2.3", "not an address"),
    ],
)
def test_each_content_filter_matches_what_it_allows_and_not_the_rest(
    allowed: dict[str, Any], matching: Any, other: Any
) -> None:
    pattern = {"detail": {"field": [allowed]}}
    assert match(pattern, {"detail": {"field": matching}})
    assert not match(pattern, {"detail": {"field": other}})


@pytest.mark.parametrize(
    ("allowed", "value"),
    [
        ({"prefix": "1"}, 12),
        ({"suffix": "e"}, True),
        ({"equals-ignore-case": "null"}, None),
        ({"wildcard": "*"}, 5),
        ({"cidr": "10.0.0.0/8"}, 167772161),
        ({"numeric": [">", 0]}, True),
        ({"anything-but": "x"}, {"nested": "object"}),  # an object is not a value
    ],
)
def test_a_filter_does_not_match_a_value_of_another_kind(allowed: dict[str, Any], value: Any) -> None:
    assert not match({"field": [allowed]}, {"field": value})


def test_anything_but_needs_the_field() -> None:
    assert not match({"state": [{"anything-but": "initializing"}]}, {})
    assert not match({"state": [{"anything-but": "initializing"}]}, {"state": []})
    assert match({"state": [{"anything-but": "initializing"}]}, {"state": None})


def test_exists_matches_on_presence_of_a_value() -> None:
    present, absent = {"c": [{"exists": True}]}, {"c": [{"exists": False}]}
    for event in ({"c": 1}, {"c": None}, {"c": ""}, {"c": [1]}):
        assert match(present, event) and not match(absent, event)
    # a missing field, an empty array and an object (not a leaf) have no value
    for event in ({}, {"c": []}, {"c": {"c1": 100}}, {"other": 1}):
        assert match(absent, event) and not match(present, event)
    assert match({"detail": {"c": [{"exists": False}]}}, {"source": "s"})  # no detail at all
    assert match({"c": [{"exists": False}, "x"]}, {"c": "x"})


def test_a_dotted_key_names_nested_fields_in_a_pattern_and_in_an_event() -> None:
    """EventBridge joins keys with dots as it compiles a pattern ("Considerations when creating event
    patterns"; localstack's dot_joining_pattern template, recorded against AWS)."""
    running = {"detail": {"state": {"status": "running"}}}
    assert match({"detail": {"state.status": ["running"]}}, running)
    assert match({"detail.state.status": ["running"]}, running)
    assert not match({"detail": {"state.status": ["stopped"]}}, running)
    assert match({"detail": {"state": {"status": ["running"]}}}, {"detail": {"state.status": "running"}})
    assert match({"$or": [{"detail.state.status": ["stopped"]}, {"detail.state": {"status": ["running"]}}]},
                 running)
    assert match({"detail": {"state.code": [{"exists": False}], "state.status": ["running"]}}, running)


def test_or_matches_when_one_of_its_members_does() -> None:
    pattern = {"source": ["aws.cloudwatch"], "$or": [
        {"metricName": ["CPUUtilization"]},
        {"metricType": ["MetricType"], "namespace": ["AWS/EC2"],
         "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]},
    ]}
    assert match(pattern, {"source": "aws.cloudwatch", "metricName": "CPUUtilization"})
    assert match(pattern, {"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/EC2",
                           "spaceId": 1000})
    assert not match(pattern, {"source": "aws.cloudwatch", "metricType": "MetricType",
                               "namespace": "AWS/EC2"})
    assert not match(pattern, {"source": "other", "metricName": "CPUUtilization"})
    nested = {"detail": {"$or": [{"a": [{"prefix": "x"}]}, {"b": [{"numeric": [">", 1]}]}]}}
    assert match(nested, {"detail": {"b": 2}}) and not match(nested, {"detail": {"a": "y", "b": 1}})


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ([], "Filter is not an object"),
        ({}, "Empty objects are not allowed"),
        ({"detail": {}}, "Empty objects are not allowed"),
        ({"source": "aws.ec2"}, '"source" must be an object or an array'),
        ({"source": []}, "Empty arrays are not allowed"),
        ({"source": [["a"]]}, "Match value must be String, number, true, false, or null"),
        ({"a": [{}]}, "Match expression name not found"),
        ({"a": [{"regex": "a.*"}]}, "Unrecognized match type regex"),
        ({"a": [{"prefix": 5}]}, "prefix match pattern must be a string"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, "Only one key allowed in match expression"),
        ({"a": [{"prefix": {}}]}, "Prefix expression name not found"),
        ({"a": [{"prefix": {"wildcard": "x"}}]}, "Unsupported prefix pattern: wildcard"),
        ({"a": [{"suffix": {"equals-ignore-case": 1}}]}, "equals-ignore-case match pattern must be a string"),
        ({"a": [{"suffix": None}]}, "suffix match pattern must be a string"),
        ({"a": [{"equals-ignore-case": ["x"]}]}, "equals-ignore-case match pattern must be a string"),
        ({"a": [{"wildcard": 1}]}, "wildcard match pattern must be a string"),
        ({"a": [{"wildcard": "a**b"}]}, "Consecutive wildcard characters at pos 2"),
        ({"a": [{"wildcard": "é**"}]}, "Consecutive wildcard characters at pos 3"),  # bytes, as EventBridge
        ({"a": [{"wildcard": "a\\b"}]}, "Invalid escape character at pos 2"),
        ({"a": [{"wildcard": "ab\\"}]}, "Invalid escape character at pos 3"),
        ({"a": [{"exists": "yes"}]}, "exists match pattern must be either true or false."),
        ({"a": [{"numeric": 5}]}, "Value of numeric must be an array."),
        ({"a": [{"numeric": []}]}, "Invalid member in numeric match: ]"),
        ({"a": [{"numeric": [5, ">"]}]}, "Invalid member in numeric match: 5"),
        ({"a": [{"numeric": ["!=", 5]}]}, "Unrecognized numeric range operator: !="),
        ({"a": [{"numeric": ["=", "5"]}]}, "Value of equals must be numeric"),
        ({"a": [{"numeric": [">"]}]}, "Value of > must be numeric"),
        ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "Too many elements in numeric expression"),
        ({"a": [{"numeric": [">", 1, 5]}]}, "Bad value in numeric range: 5"),
        ({"a": [{"numeric": [">", 1, ">=", 5]}]}, "Bad numeric range operator: >="),
        ({"a": [{"numeric": [">", 1, "<", True]}]}, "Value of < must be numeric"),
        ({"a": [{"numeric": [">", 1, "<", 5, "<", 6]}]}, "Too many terms in numeric range expression"),
        ({"a": [{"numeric": [">", 5, "<", 5]}]}, "Bottom must be less than top"),
        ({"a": [{"numeric": [">", 6e9]}]}, "Value must be between -5.0E9 and 5.0E9, inclusive"),
        ({"a": [{"numeric": ["=", 1], "prefix": "x"}]}, "Too many elements in numeric expression"),
        ({"a": [{"anything-but": True}]}, "Value of anything-but must be an array or single string/number"),
        ({"a": [{"anything-but": ["a", 1]}]}, MIXED),
        ({"a": [{"anything-but": []}]}, MIXED),
        ({"a": [{"anything-but": [None]}]}, "Inside anything but list, start|null|boolean is not supported."),
        ({"a": [{"anything-but": [-6e9]}]}, "Value must be between -5.0E9 and 5.0E9, inclusive"),
        ({"a": [{"anything-but": {}}]}, "Anything-But expression name not found"),
        ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "Unsupported anything-but pattern: numeric"),
        ({"a": [{"anything-but": {"prefix": ""}}]}, "Null prefix/suffix not allowed"),
        ({"a": [{"anything-but": {"suffix": [1]}}]}, "prefix/suffix match pattern must be a string"),
        ({"a": [{"anything-but": {"equals-ignore-case": 1}}]}, "Inside anything-but/equals-ignore-case list"),
        ({"a": [{"anything-but": {"wildcard": [None]}}]}, "wildcard match pattern must be a string"),
        ({"a": [{"anything-but": {"wildcard": "**"}}]}, "Consecutive wildcard characters at pos 1"),
        ({"a": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}, "Too many elements in numeric"),
        ({"a": [{"cidr": 10}]}, "prefix match pattern must be a string"),  # sic: EventBridge's words
        ({"a": [{"cidr": "10.0.0.0"}]}, "Malformed CIDR, one '/' required"),
        ({"a": [{"cidr": "10.0.0.0/"}]}, "Malformed CIDR, one '/' required"),
        ({"a": [{"cidr": "10.0.0.0/x"}]}, "Malformed CIDR, mask bits must be an integer"),
        ({"a": [{"cidr": "10.0.0.0/-1"}]}, "Malformed CIDR, mask bits must not be negative"),
        ({"a": [{"cidr": "10.0.0.0/32"}]}, "IPv4 mask bits must be < 32"),
        ({"a": [{"cidr": "::/128"}]}, "IPv6 mask bits must be < 128"),
        ({"a": [{"cidr": "example.com/8"}]}, "Nonstandard IP address: example.com"),
        ({"a": [{"cidr": "10.0.0.999/8"}]}, "Invalid IP address: 10.0.0.999"),
        ({"$or": {"a": ["x"]}}, "It must be an Array followed with $or."),
        ({"$or": [{"a": ["x"]}, "b"]}, "Only JSON object is allowed in array of $or relationship."),
        ({"$or": [{"a": ["x"]}]}, "There must have at least 2 Objects in $or relationship."),
        ({"$or": [{"a": ["x"]}, {"numeric": [1]}]}, "numeric is Ruler reserved fieldName which cannot be"),
        ({"$or": [{"a": ["x"]}, {"b": {"$or": [{"c": ["x"]}]}}]}, "There must have at least 2 Objects"),
    ],
)
def test_a_malformed_pattern_is_refused_in_eventbridges_words(pattern: Any, reason: str) -> None:
    refusal = "^" + re.escape(f"Event pattern is not valid. Reason: {reason}")
    with pytest.raises(ServiceError, match=refusal) as raised:
        parse(json.dumps(pattern))
    assert raised.value.code == "InvalidEventPatternException"


def test_a_pattern_that_is_not_json_is_refused() -> None:
    with pytest.raises(ServiceError, match="EventPattern is not valid JSON") as raised:
        parse("{nope")
    assert raised.value.code == "InvalidEventPatternException"
