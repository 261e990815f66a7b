"""An execution environment's output, as Lambda keeps it: in the environment's log stream, a line
at a time with the millisecond it was read, and a phase at a time (the init phase, then each
invocation) for the invocation that reports it (LogType Tail, a pipeline's execution log).

The environment's stdout and stderr are one pipe, read by one thread. The runtime ends each phase
by writing PHASE_END once it has flushed what the phase printed; a line the phase left unfinished
ends there. Lambda's own lines (INIT_START first, then START, END, REPORT) go into the stream only,
between the phases.
"""

from __future__ import annotations

import os
import threading
from typing import IO

from pipelines.local.jobs.log_events import StreamWriter

PHASE_END = b"\x1elocal-lambda-phase-end\x1e"
CHUNK = 1 << 16


class EnvironmentOutput:
    def __init__(self, pipe: int, stream: IO[str] | None, opening: str = "") -> None:
        """Read `pipe` (the read end, which this object closes) until the environment's
        process and everything it started have closed the write end; the stream starts with
        `opening` (Lambda's INIT_START), before anything the environment printed."""
        self._pipe = pipe
        self._stream = stream
        self._writer = StreamWriter(stream) if stream is not None else None
        if opening and self._writer is not None:
            self._writer.write(opening)
            self._writer.flush()
        self._changed = threading.Condition()
        self._current: list[str] = []  # the lines of the phase in progress
        self._ended: list[str] = []  # the text of each phase ended and not yet taken
        self._closed = False
        threading.Thread(target=self._read, name=f"lambda-output-{pipe}", daemon=True).start()

    def platform(self, line: str) -> None:
        """A line of Lambda's own, into the stream only."""
        with self._changed:
            self._write(line)

    def phase(self, timeout: float) -> str:
        """The text of the next phase once it has ended; if it does not end within `timeout`
        seconds (a process killed, and a child of its still holding the pipe), what it printed
        so far. Nothing once the output has ended and every phase was taken."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended or self._closed, timeout)
            if self._ended:
                return self._ended.pop(0)
            text, self._current = "".join(self._current), []
            return text

    def _read(self) -> None:
        unread = b""
        try:
            while chunk := os.read(self._pipe, CHUNK):
                unread = self._lines(unread + chunk)
        except OSError:
            pass
        finally:
            os.close(self._pipe)
            with self._changed:
                if unread:
                    self._line(unread)
                if self._current:
                    self._ended.append("".join(self._current))
                    self._current = []
                self._closed = True
                if self._stream is not None:
                    self._stream.close()
                self._changed.notify_all()

    def _lines(self, unread: bytes) -> bytes:
        """Hand over each whole line and each phase's end in `unread`; return the rest."""
        with self._changed:
            while True:
                newline, end = unread.find(b"\n"), unread.find(PHASE_END)
                if end >= 0 and (newline < 0 or end < newline):
                    if end:
                        self._line(unread[:end])
                    unread = unread[end + len(PHASE_END):]
                    self._ended.append("".join(self._current))
                    self._current = []
                    self._changed.notify_all()
                elif newline >= 0:
                    self._line(unread[:newline])
                    unread = unread[newline + 1:]
                else:
                    return unread

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace") + "\n"
        self._current.append(line)
        self._write(line)

    def _write(self, line: str) -> None:
        if self._writer is not None and not self._closed:
            self._writer.write(line)
            self._writer.flush()
