"""Whether this machine can take a job off the network, found by trying, and the reason when not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.local.system import isolation


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    isolation.isolation_unavailable.cache_clear()
    yield
    isolation.isolation_unavailable.cache_clear()


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (None, "util-linux's unshare is not installed"),
        ("/bin/false", "`unshare --net --map-current-user` cannot make a network namespace here"),
    ],
)
def test_a_machine_that_cannot_isolate_says_why(
    monkeypatch: pytest.MonkeyPatch, found: str | None, reason: str
) -> None:
    monkeypatch.setattr(isolation.shutil, "which", lambda name: found)
    assert isolation.isolation_unavailable().startswith(reason)


def test_an_isolated_command_runs_through_unshare_without_root() -> None:
    command = isolation.without_network(["python3", "step.py"])
    assert command[1:] == ["--net", "--map-current-user", "--", "python3", "step.py"]
    assert command[0].endswith("unshare")
