"""Run a command with a pseudo-terminal as its output and see what a terminal would show."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence

import pyte

COLUMNS, LINES = 140, 40


def terminal_environment(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """A colour terminal; NO_COLOR and FORCE_COLOR only when given."""
    inherited = {k: v for k, v in base.items()
                 if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES")}
    return {**inherited, "TERM": "xterm-256color", **extra}


def run_in_terminal(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = 300, lines: int = LINES
) -> tuple[int, bytes]:
    """Exit code and everything written to a COLUMNS x `lines` terminal (stdout and stderr)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, COLUMNS, 0, 0))
    process = subprocess.Popen(list(argv), stdout=follower, stderr=follower,
                               stdin=subprocess.DEVNULL, env=dict(env))
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO once the command's end of the terminal is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=timeout), b"".join(chunks)


def screen_of(raw: bytes) -> pyte.Screen:
    """The terminal after `raw` was written to it."""
    screen = pyte.Screen(COLUMNS, LINES)
    pyte.ByteStream(screen).feed(raw)
    return screen


def shown_lines(screen: pyte.Screen) -> list[str]:
    """The non-blank lines on the screen, top to bottom."""
    return [line.rstrip() for line in screen.display if line.strip()]


def colours(screen: pyte.Screen) -> set[str]:
    """The foreground colours used anywhere on the screen ('default' when none)."""
    return {char.fg for row in screen.buffer.values() for char in row.values()}
