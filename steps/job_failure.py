"""How a Processing job of the step code ends on an error: SageMaker shows the job's
output/message as its FailureReason, so the reason is written there before the job exits.

Ships in the Processing steps' library folder (lib/); standard library only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn


def write_message(base: Path, message: str) -> None:
    """SageMaker shows output/message as the Processing job's FailureReason."""
    target = base / "output" / "message"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(message, encoding="utf-8")


def fail(base: Path, message: str) -> NoReturn:
    """Stop with the reason and no traceback: the message already says what is wrong."""
    write_message(base, message)
    print(message, file=sys.stderr)
    sys.exit(1)


@contextmanager
def failure_reported(base: Path, expected: tuple[type[Exception], ...], work: str) -> Iterator[None]:
    """An `expected` error ends the job with its message alone; any other is named as `work`
    failing and keeps its traceback in the log."""
    try:
        yield
    except expected as exc:
        fail(base, str(exc))
    except Exception as exc:
        write_message(base, f"{work} failed: {type(exc).__name__}: {exc}")
        raise
