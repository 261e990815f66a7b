"""The model server as a real process on a real port: the SageMaker inference container contract."""

from __future__ import annotations

import collections
import http.client
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_PAYLOAD = 6 * 1024 * 1024
WAIT_SECONDS = 60.0
MODULE = (sys.executable, "-m", "pipelines.local.hosting.model_server")

# A tiny handler module with the same shape as steps/inference.py.
INFERENCE = (Path(__file__).parent / "data" / "stub_inference.py").read_text()


def write_model(model_dir: Path, version: str, program: str = "inference.py") -> Path:
    (model_dir / "code").mkdir(parents=True, exist_ok=True)
    (model_dir / "model.txt").write_text(version)
    (model_dir / "code" / program).write_text(INFERENCE)
    return model_dir


class Server:
    """A model server subprocess; stderr goes to a file so a full pipe can never block it."""

    def __init__(self, model_dir: Path, stderr_path: Path, env: dict[str, str] | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
        environment.update(env or {})
        environment["PYTHONPATH"] = str(REPO_ROOT)
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*MODULE, "--model-dir", str(model_dir), "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=environment,
                cwd=str(REPO_ROOT),
            )
        self.first_line = read_line(self.process, WAIT_SECONDS)
        self.port = (
            int(self.first_line.split()[1]) if self.first_line.startswith("LISTENING ") else 0
        )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT_SECONDS)
        if self.process.stdout:
            self.process.stdout.close()


def read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line, or '' if the process ends or the timeout passes first."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer and time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode() if b"\n" in buffer else ""


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as-is and read the whole answer (the server closes after these errors)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def post(
    conn: http.client.HTTPConnection,
    body: bytes,
    content_type: str = "application/json",
    accept: str = "application/json",
    path: str = "/invocations",
) -> tuple[int, str, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": content_type, "Accept": accept})
    response = conn.getresponse()
    return response.status, response.getheader("Content-Type") or "", response.read()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Two pre-forked workers whatever the machine's core count, so every contract test below
    also holds when a request can land on either worker."""
    running = Server(
        write_model(tmp_path / "model", "v1"),
        tmp_path / "stderr.txt",
        {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    )
    assert running.port, f"no LISTENING line; stderr: {running.stderr()}"
    yield running
    running.stop()


@pytest.fixture
def conn(server: Server) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_SECONDS)
    yield connection
    connection.close()


def test_ping_and_invocations_share_one_keep_alive_connection(
    conn: http.client.HTTPConnection,
) -> None:
    conn.request("GET", "/ping")
    ping = conn.getresponse()
    ping.read()
    assert ping.status == 200
    first_socket = conn.sock

    status, content_type, body = post(conn, json.dumps("great movie").encode())
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"version": "v1", "echo": "great movie"}
    status, _, body = post(conn, json.dumps({"review_text": "meh"}).encode())
    assert status == 200
    assert json.loads(body)["echo"] == {"review_text": "meh"}
    assert conn.sock is first_socket  # HTTP/1.1 keep-alive: no reconnect between requests


def test_plain_output_is_sent_with_the_accept_type(conn: http.client.HTTPConnection) -> None:
    status, content_type, body = post(conn, b'"hi"', accept="text/plain")
    assert (status, content_type, body) == (200, "text/plain", b"v1:hi")


def test_request_error_becomes_its_status_with_a_json_message(
    conn: http.client.HTTPConnection,
) -> None:
    status, content_type, body = post(conn, b"a,b\n", content_type="text/csv")
    assert (status, content_type) == (415, "application/json")
    assert json.loads(body) == {"error": "cannot read text/csv"}


def test_an_exception_carrying_a_client_status_is_a_500_as_in_the_images_stack(
    conn: http.client.HTTPConnection,
) -> None:
    """sagemaker-containers answers only a returned response with its own status: a handler that
    raises RequestError(400) gets a 500 on SageMaker, so it gets one here too."""
    status, content_type, body = post(conn, b'"raise a client error"')
    assert (status, content_type) == (500, "application/json")
    assert "RequestError" in json.loads(body)["error"]


def test_unexpected_exception_is_500_and_the_server_keeps_serving(
    conn: http.client.HTTPConnection, server: Server
) -> None:
    status, content_type, body = post(conn, b'"crash"')
    assert (status, content_type) == (500, "application/json")
    error = json.loads(body)["error"]
    assert error.startswith("internal error: ") and "ZeroDivisionError" in error
    assert "crash requested" in server.stderr()  # the traceback is logged for the operator

    status, _, body = post(conn, b'"still there?"')
    assert status == 200 and json.loads(body)["echo"] == "still there?"
    assert server.process.poll() is None


def test_body_over_6_mb_is_413_without_being_read(server: Server) -> None:
    request = (
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_PAYLOAD + 1}\r\n\r\n"
    ).encode()
    status, headers, body = raw_exchange(server.port, request)  # the body is never sent
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert str(MAX_PAYLOAD) in json.loads(body)["error"]


def test_body_of_exactly_6_mb_is_accepted(conn: http.client.HTTPConnection) -> None:
    text = "x" * (MAX_PAYLOAD - 2)
    status, _, body = post(conn, json.dumps(text).encode())
    assert status == 200 and len(json.loads(body)["echo"]) == MAX_PAYLOAD - 2


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: Server) -> None:
    body = b'"hello"'
    head = (
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)  # the client waits for this before sending its body
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["echo"] == "hello"


def test_missing_content_length_is_411(server: Server) -> None:
    request = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n"
    status, _, body = raw_exchange(server.port, request)
    assert status == 411
    assert "Content-Length" in json.loads(body)["error"]


def test_unknown_path_is_404_json(conn: http.client.HTTPConnection) -> None:
    status, content_type, body = post(conn, b"{}", path="/predict")
    assert (status, content_type) == (404, "application/json")
    assert "/predict" in json.loads(body)["error"]
    conn.request("GET", "/nothing-here")
    response = conn.getresponse()
    assert response.status == 404 and "error" in json.loads(response.read())


def test_a_client_resetting_its_connection_is_not_logged_as_an_error(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # closed with SO_LINGER 0: an RST reaches the handler waiting for the next request
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_SECONDS)
    status, _, _ = post(connection, b'"after reset"')
    connection.close()
    assert status == 200
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(WAIT_SECONDS) == 0
    assert "Traceback" not in server.stderr()


def test_program_and_submit_directory_come_from_the_environment(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.txt").write_text("from-env")
    code_dir = tmp_path / "elsewhere"
    code_dir.mkdir()
    (code_dir / "serve.py").write_text(INFERENCE)
    env = {"SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(code_dir)}
    running = Server(model_dir, tmp_path / "stderr.txt", env)
    try:
        assert running.port, running.stderr()
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=WAIT_SECONDS)
        status, _, body = post(connection, b'"x"')
        connection.close()
        assert status == 200 and json.loads(body)["version"] == "from-env"
    finally:
        running.stop()


def test_model_that_fails_to_load_exits_non_zero_without_listening(tmp_path: Path) -> None:
    running = Server(write_model(tmp_path / "model", "fail"), tmp_path / "stderr.txt")
    try:
        code = running.process.wait(WAIT_SECONDS)
        assert code != 0
        assert running.first_line == ""  # never bound a port, so it could never answer /ping
        assert "model.txt says fail" in running.stderr()
    finally:
        running.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_the_in_flight_request_finish(tmp_path: Path, workers: str) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    running = Server(
        write_model(tmp_path / "model", "v1"),
        tmp_path / "stderr.txt",
        {"TEST_FLAG_DIR": str(flags), "SAGEMAKER_MODEL_SERVER_WORKERS": workers},
    )
    outcome: dict[str, tuple[int, str, bytes] | Exception] = {}

    def blocked_request() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=WAIT_SECONDS)
        try:
            outcome["answer"] = post(connection, b'"block"')
        except Exception as exc:  # recorded so the assertion below shows it
            outcome["answer"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=blocked_request)
    try:
        assert running.port, running.stderr()
        worker.start()
        wait_until((flags / "started").exists, WAIT_SECONDS, "the prediction to start")
        running.process.send_signal(signal.SIGTERM)  # while the request is still in predict_fn
        wait_until(lambda: "stopping, 1 request(s) in flight" in running.stderr(), WAIT_SECONDS)
        (flags / "release").touch()
        worker.join(WAIT_SECONDS)
        result = outcome["answer"]
        assert not isinstance(result, Exception), result
        status, _, body = result
        assert status == 200 and json.loads(body)["echo"] == "block"
        assert running.process.wait(WAIT_SECONDS) == 0
    finally:
        (flags / "release").touch()
        running.stop()
        worker.join(WAIT_SECONDS)


def test_one_prediction_at_a_time_while_other_requests_are_still_answered(tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    running = Server(
        write_model(tmp_path / "model", "v1"),
        tmp_path / "stderr.txt",
        {"TEST_FLAG_DIR": str(flags), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
    )
    answers: dict[str, tuple[int, str, bytes] | Exception] = {}

    def request(name: str, body: bytes) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=WAIT_SECONDS)
        try:
            answers[name] = post(connection, body)
        except Exception as exc:  # recorded so the assertion below shows it
            answers[name] = exc
        finally:
            connection.close()

    blocked = threading.Thread(target=request, args=("blocked", b'"block"'))
    waiting = threading.Thread(target=request, args=("waiting", b'"next"'))
    try:
        assert running.port, running.stderr()
        blocked.start()
        wait_until((flags / "started").exists, WAIT_SECONDS, "the prediction to start")
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive(), "a second prediction ran while the first was still running"
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=WAIT_SECONDS)
        connection.request("GET", "/ping")
        assert connection.getresponse().status == 200  # the worker still answers meanwhile
        connection.close()
        (flags / "release").touch()
        blocked.join(WAIT_SECONDS)
        waiting.join(WAIT_SECONDS)
        assert [answers[name][0] for name in ("blocked", "waiting")] == [200, 200], answers
    finally:
        (flags / "release").touch()
        running.stop()
        blocked.join(WAIT_SECONDS)
        waiting.join(WAIT_SECONDS)


# --- pre-forked workers --------------------------------------------------------------------------


def worker_pids(server: Server, count: int) -> list[int]:
    """The model server's worker processes, once there are ``count`` of them."""
    pid = server.process.pid
    children_file = Path(f"/proc/{pid}/task/{pid}/children")

    def workers() -> list[int] | None:
        pids = sorted(int(p) for p in children_file.read_text().split())
        return pids if len(pids) == count else None

    return wait_until(workers, WAIT_SECONDS, f"{count} workers")


def answering_pid(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_SECONDS)
    try:
        status, _, body = post(connection, b'"which worker"')
    finally:
        connection.close()
    assert status == 200, body
    return int(json.loads(body)["pid"])


def exited(pid: int) -> bool:
    """Gone, or a zombie (exited; only waiting for its parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Server]:
    running = Server(
        write_model(tmp_path / "model", "v1"),
        tmp_path / "stderr.txt",
        {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    )
    assert running.port, running.stderr()
    yield running
    for pid in worker_pids(running, 2) if running.process.poll() is None else []:
        os.kill(pid, signal.SIGCONT)
    running.stop()


def freeze(pid: int) -> None:
    """SIGSTOP, then wait until every thread has stopped (kill() returns before they do)."""
    os.kill(pid, signal.SIGSTOP)

    def stopped() -> bool:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return {(task / "stat").read_text().split(")")[-1].split()[0] for task in tasks} <= {"T", "t"}

    wait_until(stopped, WAIT_SECONDS, f"worker {pid} to stop")


def test_every_worker_serves_the_shared_port(two_workers: Server) -> None:
    first, second = worker_pids(two_workers, 2)
    freeze(first)  # a stopped worker cannot accept: the other one must
    assert {answering_pid(two_workers.port) for _ in range(5)} == {second}
    os.kill(first, signal.SIGCONT)
    freeze(second)
    assert {answering_pid(two_workers.port) for _ in range(5)} == {first}
    os.kill(second, signal.SIGCONT)
    assert "2 workers" in two_workers.stderr()


def test_keep_alive_connections_are_spread_over_the_workers(two_workers: Server) -> None:
    # A client pool opens its connections and keeps them; whichever worker wakes first would take
    # most of them, leaving the other idle. Each connection here stays open while the next opens.
    connections = [
        http.client.HTTPConnection("127.0.0.1", two_workers.port, timeout=WAIT_SECONDS)
        for _ in range(8)
    ]
    try:
        holders = []
        for connection in connections:
            status, _, body = post(connection, b'"which worker"')
            assert status == 200, body
            holders.append(json.loads(body)["pid"])
    finally:
        for connection in connections:
            connection.close()
    counts = collections.Counter(holders)
    assert len(counts) == 2 and min(counts.values()) >= 3, holders  # 4 + 4, give or take a race


def test_a_worker_that_dies_is_replaced_and_the_server_keeps_serving(two_workers: Server) -> None:
    victim, survivor = worker_pids(two_workers, 2)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: exited(victim), WAIT_SECONDS, f"worker {victim} to exit")

    def replaced() -> set[int]:
        replacement = set(worker_pids(two_workers, 2)) - {survivor}
        return replacement if victim not in replacement else set()

    replacement = wait_until(replaced, WAIT_SECONDS, "a replacement worker")
    assert answering_pid(two_workers.port) in {survivor, *replacement}
    assert f"worker {victim} was killed by SIGKILL" in two_workers.stderr()


def test_a_burst_of_sigterms_still_stops_the_server_cleanly(two_workers: Server) -> None:
    # Signals keep arriving while the parent is already stopping (hosting's terminate, the
    # parent-death signal, an impatient operator): each lands in a handler, never in a lock.
    # (Only while it serves: once the interpreter is finalising, Python itself has restored the
    # default action, and a SIGTERM then ends the process by signal.)
    for _ in range(500):
        os.kill(two_workers.process.pid, signal.SIGTERM)
    assert two_workers.process.wait(WAIT_SECONDS) == 0


def test_killing_the_parent_takes_its_workers_with_it(two_workers: Server) -> None:
    workers = worker_pids(two_workers, 2)
    two_workers.process.kill()
    two_workers.process.wait(WAIT_SECONDS)
    for pid in workers:
        wait_until(lambda pid=pid: exited(pid), WAIT_SECONDS, f"worker {pid} to exit")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", two_workers.port), timeout=WAIT_SECONDS).close()


def test_workers_that_keep_dying_stop_the_server_with_exit_code_1(two_workers: Server) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while two_workers.process.poll() is None and time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", two_workers.port, timeout=WAIT_SECONDS)
        try:
            post(connection, b'"exit"')
        except (OSError, http.client.HTTPException):
            pass  # the worker died under this request, as asked
        finally:
            connection.close()
    assert two_workers.process.wait(WAIT_SECONDS) == 1
    assert "workers keep dying" in two_workers.stderr()


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_worker_count_is_refused_before_listening(tmp_path: Path, value: str) -> None:
    running = Server(
        write_model(tmp_path / "model", "v1"),
        tmp_path / "stderr.txt",
        {"SAGEMAKER_MODEL_SERVER_WORKERS": value},
    )
    try:
        assert running.process.wait(WAIT_SECONDS) == 1
        assert running.first_line == ""
        assert f"SAGEMAKER_MODEL_SERVER_WORKERS must be a whole number of at least 1, not {value!r}" in (
            running.stderr()
        )
    finally:
        running.stop()
