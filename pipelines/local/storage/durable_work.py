"""Background work the state keeps: the items of one of its queue tables, each taken to its end on a
thread of its own. A stopping server leaves them in the state, and the next start resumes them, so
the work outlives any one server as Lambda's and EventBridge's queues outlive any one host."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipelines.local.storage.database import Database, until_closed

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Item = TypeVar("Item")


class DurableWork(Generic[Item]):
    """`run` takes an item (a dataclass, stored as its fields) from where the state has it to its
    end; it watches `stopping` and leaves the item as it is when the server stops."""

    def __init__(
        self,
        database: Database,
        queue: str,
        item: Callable[..., Item],
        run: Callable[[Item], None],
        thread_name: Callable[[Item], str],
    ) -> None:
        self.database = database
        self.queue = queue
        self.stopping = threading.Event()
        self._item = item
        self._run = run
        self._thread_name = thread_name

    def keep(self, key: str, accepted: float, item: DataclassInstance) -> None:
        """Store the item as it is now (a new one, or the next step of one)."""
        self.database.enqueue(self.queue, key, accepted, asdict(item))

    def forget(self, key: str) -> None:
        """The item's work is done."""
        self.database.dequeue(self.queue, key)

    def start(self, item: Item) -> None:
        thread = threading.Thread(
            target=until_closed(self._run), args=(item,), name=self._thread_name(item), daemon=True
        )
        thread.start()

    def resume(self) -> None:
        """After a restart: every item the state still holds goes on from where it was."""
        body: Any
        for body in self.database.queued(self.queue):
            self.start(self._item(**body))

    def close(self) -> None:
        """The server is stopping: what is not done stays in the state for the next start."""
        self.stopping.set()
