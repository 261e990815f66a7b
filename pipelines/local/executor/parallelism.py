"""MaxParallelExecutionSteps of a running execution, which UpdatePipelineExecution may change.

The executor reads the limit before it starts each step, so a change binds the steps not started
yet; steps already running go on. A change also completes the future the executor waits on next
to its running steps, so a raised limit starts waiting steps at once rather than when a running
step ends.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future


class StepLimit:
    def __init__(self, steps: int | None = None) -> None:
        self._lock = threading.Lock()
        self._steps = steps  # None: as many steps as are ready
        self._changed: Future[None] = Future()

    @property
    def steps(self) -> int | None:
        return self._steps

    def changed(self) -> Future[None]:
        """Done at the next change: take it before reading `steps`, so no change goes unseen."""
        with self._lock:
            return self._changed

    def change(self, steps: int | None) -> None:
        with self._lock:
            self._steps = steps
            changed, self._changed = self._changed, Future()
        changed.set_result(None)
