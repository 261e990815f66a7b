"""SQLite persistence for the local SageMaker: every resource is its Describe* response as JSON.

Storing the API's own shapes keeps the protocol layer a thin pass-through and lets a restarted server
answer exactly what it answered before. One connection, one lock: the server's threads take turns,
and WAL mode keeps readers in other processes (the CLI, tests) consistent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS model_packages (
    arn TEXT PRIMARY KEY, grp TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL,
    body TEXT NOT NULL, UNIQUE (grp, version));
CREATE TABLE IF NOT EXISTS executions (
    arn TEXT PRIMARY KEY, pipeline TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    execution_arn TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (execution_arn, name));
"""

Body = dict[str, Any]


def public(body: Body) -> Body:
    """A stored body as the API returns it: fields starting with "_" are the server's own."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


class Database:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, *args: Any) -> list[Body]:
        with self._lock:
            return [json.loads(row[0]) for row in self._db.execute(sql, args).fetchall()]

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

    def all(self, kind: str) -> list[Body]:
        return self._rows("SELECT body FROM resources WHERE kind = ? ORDER BY created", kind)

    def delete(self, kind: str, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))

    # Model packages: versions are numbered per group inside one transaction.
    def add_package(self, group: str, make_body: Any, created: float) -> Body:
        """Insert the next version of `group`; `make_body(version)` builds its description."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_packages WHERE grp = ?", (group,)
            ).fetchone()
            body: Body = make_body(int(row[0]))
            db.execute(
                "INSERT INTO model_packages VALUES (?, ?, ?, ?, ?)",
                (body["ModelPackageArn"], group, int(row[0]), created, json.dumps(body)),
            )
            return body

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

    def steps(self, execution_arn: str) -> list[Body]:
        return self._rows(
            "SELECT body FROM steps WHERE execution_arn = ? ORDER BY seq", execution_arn
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
