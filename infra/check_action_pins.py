"""Fail when a GitHub Actions `uses:` is not pinned to a full commit SHA with its version beside it.

    python infra/check_action_pins.py [FILE_OR_DIR ...]     (default: .github)

A tag such as `@v6` can be moved by whoever controls the action's repository, and the next run
executes the moved code with the job's token and cloud credentials; a commit SHA cannot be moved.
The version comment (`@<sha> # v6.0.2`) is for the reader and for update tools. Local actions
(`./path`) are part of this repository and need no pin; container actions pin a sha256 digest.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<quote>['\"]?)(?P<ref>[^'\"\s#]+)(?P=quote)\s*(?P<rest>.*)$")
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")
PINNED_IMAGE = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")
VERSION_COMMENT = re.compile(r"^#\s*v\d+(?:\.\d+){0,2}\b")


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    reference: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reference}: {self.problem}"


def problem_of(reference: str, comment: str) -> str | None:
    """Why one `uses:` reference is not acceptably pinned, or None if it is."""
    if reference.startswith("./"):
        return None
    if reference.startswith("docker://"):
        return None if PINNED_IMAGE.match(reference) else "pin the image to a sha256 digest"
    if not PINNED_ACTION.match(reference):
        return "pin to a full 40-character commit SHA, not a tag or branch"
    if not VERSION_COMMENT.match(comment):
        return "add the version the SHA stands for as a comment, e.g. `# v6.0.2`"
    return None


def findings_in(path: Path) -> Iterator[Finding]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = USES.match(line)
        if match:
            problem = problem_of(match["ref"], match["rest"].strip())
            if problem:
                yield Finding(path, number, match["ref"], problem)


def workflow_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, or found under the directories named."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
        else:
            found.append(path)
    return found


def main(argv: list[str]) -> int:
    files = workflow_files([Path(a) for a in argv] or [REPO / ".github"])
    if not files:
        print("check_action_pins: no workflow files found", file=sys.stderr)
        return 1
    findings = [f for path in files for f in findings_in(path)]
    for finding in findings:
        print(finding)
    print(f"action pins: {len(files)} file(s), {len(findings)} unpinned reference(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
