"""SQLite persistence for the local SageMaker: every resource is its Describe* response as JSON.

Storing the API's own shapes keeps the protocol layer a thin pass-through and lets a restarted server
answer exactly what it answered before. One connection, one lock: the server's threads take turns,
and WAL mode keeps readers in other processes (the CLI, tests) consistent.

Another process may hold the write lock for a while (an `sqlite3` shell in a transaction, a backup).
A call that finds the database busy waits and retries with backoff for up to `retry_seconds`,
without holding the connection's lock between attempts, so reads from other threads go on. What
still cannot be done becomes a ServiceError the caller can report: busy beyond the budget, a full
disk, a read-only state directory. A failed write is rolled back whole.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from pipelines.local.errors import ServiceError

BUSY_WAIT_SECONDS = 0.1  # SQLite's own wait per attempt, while this connection's lock is held
RETRY_SECONDS = 30.0  # how long one call keeps retrying a busy database (boto3 waits 60 s)
FIRST_BACKOFF_SECONDS = 0.02
MAX_BACKOFF_SECONDS = 1.0
# Primary result codes (https://www.sqlite.org/rescode.html); extended codes keep them in the low byte.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_FULL = 5, 6, 8, 13
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS model_packages (
    arn TEXT PRIMARY KEY, grp TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL,
    body TEXT NOT NULL, UNIQUE (grp, version));
CREATE TABLE IF NOT EXISTS package_numbers (grp TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS executions (
    arn TEXT PRIMARY KEY, pipeline TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    execution_arn TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (execution_arn, name));
CREATE TABLE IF NOT EXISTS async_events (id TEXT PRIMARY KEY, accepted REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event_deliveries (id TEXT PRIMARY KEY, accepted REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS executions_by_pipeline ON executions (pipeline, created);
CREATE INDEX IF NOT EXISTS steps_by_cache_key ON steps (json_extract(body, '$._CacheKey'));
"""
# A pipeline's history grows by every run (an hourly schedule: 8,760 a year), so what a run or a
# listing asks of it is found through the indexes above, not by reading every execution and step.
# Work a service accepted and owes an outcome, kept until it has one: Lambda's asynchronous events,
# and EventBridge's deliveries of events a target refused, which it retries.
QUEUES = frozenset({"async_events", "event_deliveries"})

Body = dict[str, Any]


def public(body: Body) -> Body:
    """A stored body as the API returns it: fields starting with "_" are the server's own."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


def _code(error: sqlite3.Error) -> int:
    return int(getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF


def _busy(error: sqlite3.Error) -> bool:
    return _code(error) in (SQLITE_BUSY, SQLITE_LOCKED)


def _queue(name: str) -> str:
    """A queue's table, checked, as a table name cannot be an SQL parameter."""
    if name not in QUEUES:
        raise ValueError(f"no queue {name!r}")
    return name


def storage_failure(path: Path, error: sqlite3.Error) -> ServiceError:
    """The API's answer when the database cannot do a call's work: a server fault (5xx) that says
    which condition of this machine to fix."""
    code = _code(error)
    if code == SQLITE_FULL:
        return ServiceError("InternalFailure", f"No space left on device: cannot write {path} ({error})", 500)
    if code == SQLITE_READONLY:
        return ServiceError("InternalFailure", f"Read-only file system: cannot write {path} ({error})", 500)
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return ServiceError(
            "ServiceUnavailable", f"{path} is locked by another process ({error}); try again later", 503
        )
    return ServiceError("InternalFailure", f"cannot use {path}: {error}", 500)


class DatabaseClosed(Exception):
    """The server is stopping and its database takes no more reads or writes."""


def until_closed(work: Callable[..., None]) -> Callable[..., None]:
    """`work`, for a thread of its own, ending quietly when the server closes the database under
    it: what it had saved is where the next start resumes, as after a crash."""

    def run(*args: Any) -> None:
        with suppress(DatabaseClosed):
            work(*args)

    return run


class Database:
    def __init__(self, path: Path, retry_seconds: float = RETRY_SECONDS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.retry_seconds = retry_seconds
        self._lock = threading.RLock()
        self._closed = False
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=BUSY_WAIT_SECONDS
        )
        self._retrying(self._prepare)

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def _retrying(self, attempt: Callable[[], T], hold: bool = False) -> T:
        """`attempt()` under the lock, retried with backoff while another process keeps the database
        busy; the lock is free between attempts. With `hold`, returns still holding the lock."""
        deadline = time.monotonic() + self.retry_seconds
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            self._lock.acquire()
            try:
                if self._closed:
                    raise DatabaseClosed(f"{self.path} is closed: the server is stopping")
                result = attempt()
            except sqlite3.OperationalError as error:
                self._lock.release()
                if not _busy(error) or time.monotonic() >= deadline:
                    raise storage_failure(self.path, error) from error
            except BaseException:
                self._lock.release()
                raise
            else:
                if not hold:
                    self._lock.release()
                return result
            time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE (waiting out a busy database) ... COMMIT; any error rolls back whole."""
        self._retrying(lambda: self._db.execute("BEGIN IMMEDIATE"), hold=True)
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError):
                raise storage_failure(self.path, error) from error
            raise
        finally:
            self._lock.release()

    def _rows(self, sql: str, *args: Any) -> list[Body]:
        return self._retrying(
            lambda: [json.loads(row[0]) for row in self._db.execute(sql, args).fetchall()]
        )

    # Resources: pipelines, model package groups, models, endpoint configs, endpoints, functions.
    def put(self, kind: str, name: str, body: Body, created: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO resources VALUES (?, ?, ?, ?) ON CONFLICT (kind, name) "
                "DO UPDATE SET body = excluded.body",
                (kind, name, created, json.dumps(body)),
            )

    def get(self, kind: str, name: str) -> Body | None:
        rows = self._rows("SELECT body FROM resources WHERE kind = ? AND name = ?", kind, name)
        return rows[0] if rows else None

    def find(self, kind: str, name: str) -> Body | None:
        """The resource named `name` whatever the case (an exact match first): for kinds whose names
        SageMaker compares case-insensitively."""
        rows = self._rows(
            "SELECT body FROM resources WHERE kind = ? AND lower(name) = lower(?) "
            "ORDER BY name = ? DESC LIMIT 1",
            kind, name, name,
        )
        return rows[0] if rows else None

    def all(self, kind: str) -> list[Body]:
        return self._rows("SELECT body FROM resources WHERE kind = ? ORDER BY created", kind)

    def delete(self, kind: str, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))

    # Model packages: versions are numbered per group inside one transaction, and a deleted
    # version's number is never given again (package_numbers keeps the last one given).
    def add_package(self, group: str, make_body: Any, created: float) -> Body:
        """Insert the next version of `group`; `make_body(version)` builds its description."""
        with self.transaction() as db:
            version = int(db.execute(
                "SELECT MAX(COALESCE((SELECT last FROM package_numbers WHERE grp = ?), 0), "
                "COALESCE((SELECT MAX(version) FROM model_packages WHERE grp = ?), 0)) + 1",
                (group, group),
            ).fetchone()[0])
            body: Body = make_body(version)
            db.execute(
                "INSERT INTO model_packages VALUES (?, ?, ?, ?, ?)",
                (body["ModelPackageArn"], group, version, created, json.dumps(body)),
            )
            db.execute(
                "INSERT INTO package_numbers VALUES (?, ?) "
                "ON CONFLICT (grp) DO UPDATE SET last = excluded.last",
                (group, version),
            )
            return body

    def delete_package(self, arn: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM model_packages WHERE arn = ?", (arn,))

    def delete_package_group(self, group: str) -> None:
        """A group and its numbering: a group created again under the name starts at version 1."""
        with self.transaction() as db:
            db.execute("DELETE FROM resources WHERE kind = 'model_package_group' AND name = ?", (group,))
            db.execute("DELETE FROM package_numbers WHERE grp = ?", (group,))

    def package(self, arn: str) -> Body | None:
        rows = self._rows("SELECT body FROM model_packages WHERE arn = ?", arn)
        return rows[0] if rows else None

    def packages(self, group: str | None = None) -> list[Body]:
        if group is None:
            return self._rows("SELECT body FROM model_packages ORDER BY created, version")
        return self._rows("SELECT body FROM model_packages WHERE grp = ? ORDER BY version", group)

    def save_package(self, body: Body) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE model_packages SET body = ? WHERE arn = ?",
                (json.dumps(body), body["ModelPackageArn"]),
            )

    # Executions and their steps.
    def save_execution(self, body: Body) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO executions VALUES (?, ?, ?, ?) ON CONFLICT (arn) "
                "DO UPDATE SET body = excluded.body",
                (
                    body["PipelineExecutionArn"],
                    body["PipelineArn"],
                    body["CreationTime"],
                    json.dumps(body),
                ),
            )

    def execution(self, arn: str) -> Body | None:
        rows = self._rows("SELECT body FROM executions WHERE arn = ?", arn)
        return rows[0] if rows else None

    def executions(self, pipeline_arn: str | None = None) -> list[Body]:
        if pipeline_arn is None:
            return self._rows("SELECT body FROM executions ORDER BY created")
        return self._rows(
            "SELECT body FROM executions WHERE pipeline = ? ORDER BY created", pipeline_arn
        )

    def last_execution_times(self) -> dict[str, float]:
        """Each pipeline's latest execution's creation time, by pipeline ARN."""
        latest = "SELECT pipeline, MAX(created) FROM executions GROUP BY pipeline"
        rows = self._retrying(lambda: self._db.execute(latest).fetchall())
        return {str(pipeline): float(created) for pipeline, created in rows}

    def active_executions(self, pipeline_arn: str, statuses: tuple[str, ...]) -> list[Body]:
        """The pipeline's executions whose status is one of `statuses`."""
        marks = ", ".join("?" for _ in statuses)
        return self._rows(
            "SELECT body FROM executions WHERE pipeline = ? "
            f"AND json_extract(body, '$.PipelineExecutionStatus') IN ({marks}) ORDER BY created",
            pipeline_arn, *statuses,
        )

    def latest_cached_step(
        self, pipeline_arn: str, step_name: str, cache_key: str, not_before: float | None
    ) -> tuple[str, Body] | None:
        """The latest successful step of the pipeline's executions that has `cache_key`, ended at
        `not_before` or later, with its execution's ARN (of two that ended at once, the older
        execution's)."""
        rows = self._retrying(lambda: self._db.execute(
            "SELECT s.execution_arn, s.body FROM steps s JOIN executions e ON e.arn = s.execution_arn "
            "WHERE json_extract(s.body, '$._CacheKey') = ? AND e.pipeline = ? AND s.name = ? "
            "AND json_extract(s.body, '$.StepStatus') = 'Succeeded' "
            "AND COALESCE(json_extract(s.body, '$.EndTime'), 0) >= ? "
            "ORDER BY COALESCE(json_extract(s.body, '$.EndTime'), 0) DESC, e.created LIMIT 1",
            (cache_key, pipeline_arn, step_name, -1.0 if not_before is None else not_before),
        ).fetchall())
        return (str(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def save_step(self, execution_arn: str, body: Body) -> None:
        with self.transaction() as db:
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE execution_arn = ?",
                (execution_arn,),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO steps VALUES (?, ?, ?, ?) ON CONFLICT (execution_arn, name) "
                "DO UPDATE SET body = excluded.body",
                (execution_arn, body["StepName"], seq, json.dumps(body)),
            )

    def delete_pipeline_history(self, pipeline_arn: str) -> None:
        """A deleted pipeline's executions, their steps and its versions, in one transaction."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM steps WHERE execution_arn IN (SELECT arn FROM executions WHERE pipeline = ?)",
                (pipeline_arn,),
            )
            db.execute("DELETE FROM executions WHERE pipeline = ?", (pipeline_arn,))
            db.execute(
                "DELETE FROM resources WHERE kind = 'pipeline_version' AND substr(name, 1, ?) = ?",
                (len(pipeline_arn) + 1, f"{pipeline_arn}#"),
            )

    def steps(self, execution_arn: str) -> list[Body]:
        return self._rows(
            "SELECT body FROM steps WHERE execution_arn = ? ORDER BY seq", execution_arn
        )

    # Queues (QUEUES): each item under its id, from acceptance until its outcome.
    def enqueue(self, queue: str, key: str, accepted: float, body: Body) -> None:
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO {_queue(queue)} VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                (key, accepted, json.dumps(body)),
            )

    def queued(self, queue: str) -> list[Body]:
        return self._rows(f"SELECT body FROM {_queue(queue)} ORDER BY accepted")

    def dequeue(self, queue: str, key: str) -> None:
        with self.transaction() as db:
            db.execute(f"DELETE FROM {_queue(queue)} WHERE id = ?", (key,))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()
