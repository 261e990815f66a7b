"""SIGTERM while invocations keep coming: every request is answered (200, or 503 once the server
is going away, which SDKs retry) or its connection is refused or closed. None gets a client error
such as "endpoint not found", which callers take as permanent."""

from __future__ import annotations

import collections
import http.client
import os
import signal
import threading

import pytest
from waiting import wait_until

from .support import ENDPOINT, HOST, Local, reap

pytestmark = pytest.mark.e2e
REVIEW = b'{"review_text": "solid and reliable, great value"}'
PATH = f"/endpoints/{ENDPOINT}/invocations"
JSON_HEADERS = {"Content-Type": "application/json"}
CLIENTS = 8


class Invoker:
    """Clients invoking back to back over keep-alive connections until the server is gone."""

    def __init__(self, local: Local) -> None:
        self.local = local
        self.port = local.port
        self.outcomes: collections.Counter[int | str] = collections.Counter()
        self.lock = threading.Lock()
        self.gone = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def _record(self, outcome: int | str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    def _run(self) -> None:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=70)
        while not self.gone.is_set():
            try:
                headers = self.local.signed("POST", PATH, REVIEW, JSON_HEADERS, self.port)
                connection.request("POST", PATH, body=REVIEW, headers=headers)
                response = connection.getresponse()
                response.read()
                self._record(response.status)
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except ConnectionRefusedError:
                self._record("refused")
                connection.close()
            except (ConnectionError, http.client.HTTPException) as error:
                self._record(f"closed: {type(error).__name__}")
                connection.close()
        connection.close()

    def ok(self) -> int:
        with self.lock:
            return self.outcomes[200]


def test_sigterm_under_load_gives_no_client_error(local: Local) -> None:
    wait_until(local.in_service, 120, "the endpoint to be InService")
    invoker = Invoker(local)
    pid = local.server_pid()
    for thread in invoker.threads:
        thread.start()
    try:
        wait_until(lambda: invoker.ok() >= 100, 60, "the load to get going")
        served_before = invoker.ok()
        os.kill(pid, signal.SIGTERM)
        reap(pid)
        wait_until(lambda: invoker.outcomes["refused"] >= CLIENTS, 30, "every client to find the door shut")
    finally:
        invoker.gone.set()
        for thread in invoker.threads:
            thread.join(90)
    statuses = {outcome for outcome in invoker.outcomes if isinstance(outcome, int)}
    print(f"outcomes around SIGTERM: {dict(invoker.outcomes)}")
    assert statuses <= {200, 503}, invoker.outcomes
    assert served_before >= 100, invoker.outcomes
    wait_until(local.in_service, 120, "the endpoint to be back after a restart")
    assert local.invoke("great value, works perfectly")["label"] == 1
