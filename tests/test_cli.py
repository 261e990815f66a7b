"""The command line's own behaviour, apart from the commands' work."""

from __future__ import annotations

import subprocess
import sys

from pipelines import REPO_ROOT


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """`python -m pipelines definition | head -1`: no BrokenPipeError traceback, the shell's 141."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "definition"], cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # gone before the first line
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr
