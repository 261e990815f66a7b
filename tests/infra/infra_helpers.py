"""Offline stand-ins for CloudFormation and IAM, small enough to trust, strict where it matters.

`Stack` resolves the template's intrinsic functions the way CloudFormation would for the subset the
template uses; `allowed` evaluates IAM policy documents (explicit deny wins, conditions must hold).
Anything outside the supported subset raises instead of guessing, so a new construct in the
template fails a test rather than passing one by accident.
"""

from __future__ import annotations

import ast
import importlib.resources
import importlib.util
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name
from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
TEMPLATE = INFRA / "template.yaml"
WORKFLOWS = REPO / ".github" / "workflows"
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_NAME = "sentiment-classifier-infra"
GITHUB_REPOSITORY = "octo/sentiment"
NO_VALUE = object()


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template = cfn_yaml.load(str(path))
    assert isinstance(template, dict)
    return template


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class Stack:
    """The template with parameter values applied: conditions, names, ARNs, resolved values."""

    def __init__(self, template: Mapping[str, Any], **parameters: str) -> None:
        self.template = template
        declared = template["Parameters"]
        unknown = set(parameters) - set(declared)
        assert not unknown, f"not template parameters: {unknown}"
        self.parameters = {k: str(v.get("Default", "")) for k, v in declared.items()}
        self.parameters.update(parameters)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Resources whose Condition holds, as CloudFormation would create them."""
        return {
            name: body
            for name, body in self.template["Resources"].items()
            if "Condition" not in body or self.condition(body["Condition"])
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {n: b for n, b in self.resources.items() if b["Type"] == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        resolved = self.resolve(self.template["Resources"][logical_id].get("Properties", {}))
        assert isinstance(resolved, dict)
        return resolved

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def physical_id(self, logical_id: str) -> str:
        """What Ref gives: the name property if the template sets one, else a generated name."""
        body = self.template["Resources"][logical_id]
        name_property = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::CloudWatch::Alarm": "AlarmName",
        }.get(body["Type"])
        if body["Type"] == "AWS::IAM::OIDCProvider":
            url = self.resolve(body["Properties"]["Url"]).removeprefix("https://")
            return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{url}"
        if body["Type"] == "AWS::KMS::Key":
            return "1234abcd-12ab-34cd-56ef-1234567890ab"
        if name_property and name_property in body.get("Properties", {}):
            return str(self.resolve(body["Properties"][name_property]))
        generated = f"{STACK_NAME}-{logical_id}-ABCDEF123456"
        return generated.lower() if body["Type"] == "AWS::S3::Bucket" else generated

    def arn(self, logical_id: str) -> str:
        kind = self.template["Resources"][logical_id]["Type"]
        name = self.physical_id(logical_id)
        formats = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
            "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        }
        assert kind in formats, f"no Arn attribute modelled for {kind}"
        return formats[kind]

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK_NAME,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        assert name in self.template["Resources"], f"Ref to unknown {name}"
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::SNS::Topic":
            return self.arn(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.physical_id(name)}"
        return self.physical_id(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.template["Resources"][logical_id]["Type"]
        if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
            return self.physical_id(logical_id)
        assert attribute == "Arn", f"only Arn is modelled, not {logical_id}.{attribute}"
        return self.arn(logical_id)

    def substitute(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """A value with every intrinsic function evaluated; AWS::NoValue entries dropped."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return str(value) if isinstance(value, str) else value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self.substitute(text, variables)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Join":
                return str(arg[0]).join(str(part) for part in self.resolve(arg[1]))
            if key == "Fn::Equals":
                left, right = (self.resolve(part) for part in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(part) for part in arg)
            if key == "Fn::Or":
                return any(self.resolve(part) for part in arg)
            if key == "Condition":
                return self.condition(arg)
            assert not key.startswith("Fn::"), f"intrinsic {key} is not modelled"
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def role_policies(self, role_id: str) -> list[dict[str, Any]]:
        """Every identity policy document attached to the role: inline and AWS::IAM::Policy."""
        documents = [p["PolicyDocument"] for p in self.properties(role_id).get("Policies", [])]
        for policy_id in self.of_type("AWS::IAM::Policy"):
            roles = self.template["Resources"][policy_id]["Properties"]["Roles"]
            if {"Ref": role_id} in roles:
                documents.append(self.properties(policy_id)["PolicyDocument"])
        assert documents, f"{role_id} has no policies"
        return documents

    def all_policy_documents(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for role_id in self.of_type("AWS::IAM::Role"):
            yield from ((role_id, doc) for doc in self.role_policies(role_id))


@dataclass(frozen=True)
class Request:
    """One IAM authorization: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def _glob(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM wildcards: * any run of characters (including / and :), ? one character."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags) is not None


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    """One condition; a key absent from the request satisfies only ...IfExists and the negated
    string operators, as IAM documents."""
    actual = context.get(key)
    if operator.endswith("IfExists"):
        if actual is None:
            return True
        operator = operator.removesuffix("IfExists")
    if operator in ("StringNotEquals", "StringNotLike"):
        if actual is None:
            return True
        return not _condition_holds(operator.replace("Not", ""), key, expected, context)
    if actual is None:
        return False
    values = [str(v) for v in as_list(expected)]
    if operator in ("StringEquals", "ArnEquals"):
        return actual in values
    if operator in ("StringLike", "ArnLike"):
        return any(_glob(v, actual) for v in values)
    if operator == "Bool":
        return actual.lower() in (v.lower() for v in values)
    raise AssertionError(f"condition operator {operator} is not modelled")


def statement_matches(statement: Mapping[str, Any], request: Request) -> bool:
    unsupported = {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
    assert not unsupported, f"{unsupported} is not modelled"
    if not any(_glob(a, request.action, case_sensitive=False) for a in as_list(statement["Action"])):
        return False
    if not any(_glob(r, request.resource) for r in as_list(statement.get("Resource", "*"))):
        return False
    return all(
        _condition_holds(operator, key, expected, request.context)
        for operator, pairs in statement.get("Condition", {}).items()
        for key, expected in pairs.items()
    )


def decide(documents: list[dict[str, Any]], request: Request) -> str:
    """'Allow', 'Deny' (explicit) or 'ImplicitDeny', as IAM decides within one account."""
    statements = [s for d in documents for s in as_list(d["Statement"])]
    matching = [s["Effect"] for s in statements if statement_matches(s, request)]
    if "Deny" in matching:
        return "Deny"
    return "Allow" if "Allow" in matching else "ImplicitDeny"


def allowed(documents: list[dict[str, Any]], request: Request) -> bool:
    return decide(documents, request) == "Allow"


@cache
def iam_reference() -> dict[str, Any]:
    """cfn-lint's copy of the IAM service authorization reference (actions per service)."""
    specs = importlib.resources.files("cfnlint.data.AdditionalSpecs")
    data = json.loads(specs.joinpath("Policies.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# --- boto3 calls in the code, found by AST -------------------------------------------------------

CLIENT_SERVICES = (
    "sagemaker",
    "sagemaker-runtime",
    "s3",
    "lambda",
    "cloudwatch",  # steps/monitor.py metrics, monitoring_schedule.py alarms
    "scheduler",  # monitoring_schedule.py: the monitoring pipeline's schedule
    "sns",  # monitoring_schedule.py: the alarms' topic
    "logs",  # step_logs.py: a step's job log, the deploy function's invocations
)
# A client's variable name -> its service, for a method that several services have (delete_endpoint).
RECEIVERS = {"sm": "sagemaker", "sns": "sns"}
# botocore operation -> the IAM actions it is authorized as, where the names differ.
IAM_ACTIONS = {
    "s3:HeadObject": ("s3:GetObject", "s3:ListBucket"),  # ListBucket: 404 rather than 403
    "s3:ListObjectsV2": ("s3:ListBucket",),
    "sagemaker-runtime:InvokeEndpoint": ("sagemaker:InvokeEndpoint",),
}


@cache
def operations_by_method() -> dict[str, frozenset[tuple[str, str]]]:
    """boto3 client method name -> the (service, operation) pairs it names in these services."""
    session = botocore.session.get_session()
    found: dict[str, set[tuple[str, str]]] = {}
    for service in CLIENT_SERVICES:
        for operation in session.get_service_model(service).operation_names:
            found.setdefault(xform_name(operation), set()).add((service, operation))
    return {name: frozenset(ops) for name, ops in found.items()}


def iam_actions(service: str, operation: str) -> tuple[str, ...]:
    return IAM_ACTIONS.get(f"{service}:{operation}", (f"{service}:{operation}",))


def _operation_of_call(call: ast.Call) -> tuple[str, str] | None:
    if not isinstance(call.func, ast.Attribute):
        return None
    method = call.func.attr
    if method == "get_paginator" and call.args and isinstance(call.args[0], ast.Constant):
        method = str(call.args[0].value)
    candidates = operations_by_method().get(method)
    if not candidates:
        return None
    if len(candidates) > 1 and isinstance(call.func.value, ast.Name):  # sm.delete_endpoint, not SNS's
        service = RECEIVERS.get(call.func.value.id)
        candidates = frozenset(c for c in candidates if c[0] == service) or candidates
    assert len(candidates) == 1, f"{method} is an operation of several services: {candidates}"
    return next(iter(candidates))


@dataclass
class Module:
    """A parsed module: its functions (and methods) and the names it imports."""

    name: str
    tree: ast.Module
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    methods: dict[str, list[ast.FunctionDef]] = field(default_factory=dict)
    imported_functions: dict[str, tuple[str, str]] = field(default_factory=dict)
    imported_modules: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str) -> Module:
        spec = importlib.util.find_spec(name)
        assert spec and spec.origin, f"cannot find {name}"
        module = cls(name, ast.parse(Path(spec.origin).read_text(encoding="utf-8")))
        for statement in module.tree.body:
            if isinstance(statement, ast.FunctionDef):
                module.functions[statement.name] = statement
            if isinstance(statement, ast.ClassDef):
                for item in statement.body:
                    if isinstance(item, ast.FunctionDef):
                        module.methods.setdefault(item.name, []).append(item)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    if _is_submodule(node.module, alias.name):
                        module.imported_modules[local] = f"{node.module}.{alias.name}"
                    else:
                        module.imported_functions[local] = (node.module, alias.name)
        return module


def _is_submodule(package: str, name: str) -> bool:
    """Whether `from package import name` names a module, decided without importing it."""
    spec = importlib.util.find_spec(package)
    locations = (spec.submodule_search_locations or []) if spec else []
    return any((Path(loc) / f"{name}.py").exists() or (Path(loc) / name).is_dir() for loc in locations)


class CallGraph:
    """boto3 operations reachable from a function, following calls into the given modules."""

    def __init__(self, module_names: list[str]) -> None:
        self.modules = {name: Module.parse(name) for name in module_names}

    def _callees(self, module: Module, call: ast.Call) -> list[tuple[Module, ast.FunctionDef]]:
        func = call.func
        if isinstance(func, ast.Name):
            if func.id in module.functions:
                return [(module, module.functions[func.id])]
            if func.id in module.imported_functions:
                source, name = module.imported_functions[func.id]
                target = self.modules.get(source)
                if target and name in target.functions:
                    return [(target, target.functions[name])]
            return []
        if not isinstance(func, ast.Attribute):
            return []
        if isinstance(func.value, ast.Name) and func.value.id in module.imported_modules:
            target = self.modules.get(module.imported_modules[func.value.id])
            if target and func.attr in target.functions:
                return [(target, target.functions[func.attr])]
        return [(m, f) for m in self.modules.values() for f in m.methods.get(func.attr, [])]

    def reachable(
        self, module_name: str, function: str, excluding: frozenset[str] = frozenset()
    ) -> list[ast.FunctionDef]:
        """The function and every function it calls, directly or not, within the modules;
        functions named in `excluding` (not called, e.g. because of a flag) are not followed."""
        found: list[ast.FunctionDef] = []
        seen: set[int] = set()
        pending = [(self.modules[module_name], self.modules[module_name].functions[function])]
        while pending:
            module, node = pending.pop()
            if id(node) in seen or node.name in excluding:
                continue
            seen.add(id(node))
            found.append(node)
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                pending.extend(self._callees(module, call))
        return found

    def operations(
        self, module_name: str, function: str, excluding: frozenset[str] = frozenset()
    ) -> set[tuple[str, str]]:
        return {
            operation
            for node in self.reachable(module_name, function, excluding)
            for call in ast.walk(node)
            if isinstance(call, ast.Call) and (operation := _operation_of_call(call))
        }

    def attributes(
        self, module_name: str, function: str, excluding: frozenset[str] = frozenset()
    ) -> set[str]:
        """Attribute names read anywhere in the reachable functions (settings.pipeline_name ...),
        not following those named in `excluding`."""
        return {
            node.attr
            for function_node in self.reachable(module_name, function, excluding)
            for node in ast.walk(function_node)
            if isinstance(node, ast.Attribute)
        }

    def action_handlers(self, module_name: str, function: str) -> dict[str, str]:
        """`if args.action == "x": return f(...)` branches of a handler: action -> f."""
        found: dict[str, str] = {}
        for node in ast.walk(self.modules[module_name].functions[function]):
            if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
                continue
            test = node.test
            compares_action = (
                isinstance(test.left, ast.Attribute)
                and test.left.attr == "action"
                and len(test.ops) == 1
                and isinstance(test.ops[0], ast.Eq)
                and isinstance(test.comparators[0], ast.Constant)
            )
            first = node.body[0]
            if (
                compares_action
                and isinstance(first, ast.Return)
                and isinstance(first.value, ast.Call)
                and isinstance(first.value.func, ast.Name)
            ):
                comparator = test.comparators[0]
                assert isinstance(comparator, ast.Constant)
                found[str(comparator.value)] = first.value.func.id
        return found


def module_operations(path: Path) -> set[tuple[str, str]]:
    """Every boto3 operation called anywhere in one file (the deploy Lambda is one file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = (n for n in ast.walk(tree) if isinstance(n, ast.Call))
    return {op for op in map(_operation_of_call, calls) if op}


def call_arguments(path: Path, method: str) -> list[dict[str, Any]]:
    """The keyword arguments of each `<client>.<method>(...)` call in one file, as constants.

    A keyword given as a module-level constant's name is resolved to its value; anything else
    (a variable, an expression) is kept as its source text, so a test can tell it was not constant.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {
        target.id: statement.value.value
        for statement in tree.body
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }
    found: list[dict[str, Any]] = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if not (isinstance(call.func, ast.Attribute) and call.func.attr == method):
            continue
        arguments: dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                continue
            value = keyword.value
            if isinstance(value, ast.Constant):
                arguments[keyword.arg] = value.value
            elif isinstance(value, ast.Name) and value.id in constants:
                arguments[keyword.arg] = constants[value.id]
            else:
                arguments[keyword.arg] = f"<{ast.unparse(value)}>"
        found.append(arguments)
    return found


def environment_reads(path: Path) -> set[str]:
    """Names read through os.environ[...], os.environ.get(...) or os.getenv(...)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key: ast.expr | None = None
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "os.environ.get",
            "os.getenv",
        ):
            key = node.args[0] if node.args else None
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


# --- pipeline definitions ------------------------------------------------------------------------

EXECUTION_ID = "0a1b2c3d4e5f"


def pipeline_value(definition: Mapping[str, Any], value: Any) -> Any:
    """A definition value as SageMaker computes it at run time, with parameter defaults and the
    execution id; None where it depends on a step's output or another execution variable."""
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        reference = str(value["Get"])
        defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
        if reference.startswith("Parameters."):
            return defaults[reference.removeprefix("Parameters.")]
        variables = {"Execution.PipelineExecutionId": EXECUTION_ID}
        if reference in variables:
            return variables[reference]
        assert reference.startswith(("Steps.", "Execution.")), f"{reference} is not modelled"
        return None
    if set(value) == {"Std:Join"}:
        parts = [pipeline_value(definition, part) for part in value["Std:Join"]["Values"]]
        return None if None in parts else str(value["Std:Join"]["On"]).join(map(str, parts))
    return value


def s3_locations(definition: Mapping[str, Any]) -> set[str]:
    """Every S3 URI the definition names, joins and parameters resolved; step outputs left out."""
    found: set[str] = set()

    def visit(value: Any) -> None:
        resolved = pipeline_value(definition, value)
        if isinstance(resolved, str) and resolved.startswith("s3://"):
            found.add(resolved)
        elif isinstance(value, dict) and resolved is value:
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(dict(definition))
    return found


# --- Makefile and workflows ----------------------------------------------------------------------


def makefile_targets(path: Path = REPO / "Makefile") -> dict[str, list[str]]:
    """target -> its prerequisites and recipe lines."""
    targets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        rule = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)(.*)$", line)
        if rule and not line.startswith("\t"):
            prerequisites = rule.group(2).split("##")[0].split()
            current = targets.setdefault(rule.group(1), [])
            current.extend(f"prerequisite {p}" for p in prerequisites)
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def make_invocations(script: str) -> list[tuple[str, dict[str, str]]]:
    """(target, variable assignments) for each target named on a `make` command line."""
    found: list[tuple[str, dict[str, str]]] = []
    for command in re.split(r"&&|\|\||;|\n|\|", script):
        words = command.split()
        if not words or words[0] != "make":
            continue
        assignments = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        found += [(w, assignments) for w in words[1:] if "=" not in w and not w.startswith("-")]
    return found


CLI_INVOCATION = re.compile(
    r"-m pipelines((?:\s+--[\w-]+(?:[ =][^\s-]\S*)?)*)\s+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?([^\n]*)"
)


@dataclass(frozen=True)
class Invocation:
    """One `python -m pipelines [global flags] <command> [<action>] [flags]` in a script:
    `monitor setup` is ("monitor", "setup"), `start --wait` is ("start", None, {"--wait"})."""

    command: str
    action: str | None = None
    flags: frozenset[str] = frozenset()


def cli_invocations(script: str) -> list[Invocation]:
    return [
        Invocation(m.group(2), m.group(3), frozenset(re.findall(r"(?<!\S)--[\w-]+", m.group(4))))
        for m in CLI_INVOCATION.finditer(script)
    ]


def run_scripts(workflow: Mapping[str, Any]) -> Iterator[str]:
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if "run" in step:
                yield str(step["run"])
