"""Where the local SageMaker keeps its state: the one module that knows the state directory's layout.

The server and its parts ask this module for paths instead of joining names themselves, so moving a
folder is a change in one place.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from pathlib import Path

from pipelines import REPO_ROOT
from pipelines.local.system.isolation import SHARED_MEMORY, Confinement


@dataclass(frozen=True)
class StateLayout:
    root: Path

    @property
    def database(self) -> Path:
        """SQLite: every resource as its Describe* response."""
        return self.root / "state.db"

    @property
    def objects(self) -> Path:
        """The local S3: `s3://bucket/key` as a versioned directory tree."""
        return self.root / "store"

    @property
    def functions(self) -> Path:
        """Unpacked Lambda function code, one folder per content hash."""
        return self.root / "functions"

    @property
    def lambda_scratch(self) -> Path:
        """A folder for each running Lambda execution environment, where its mounts are set up
        (its /tmp is memory of its own); emptied when a server starts, since no environment
        outlives its server (one killed leaves its environments' folders here)."""
        return self.root / "lambda-environments"

    @property
    def endpoints(self) -> Path:
        """Model server deployments: unpacked models and server logs."""
        return self.root / "endpoints"

    @property
    def log_groups(self) -> Path:
        """CloudWatch Logs' groups of Lambda functions and endpoints (jobs/log_groups.py); the
        jobs' streams are in their job folders."""
        return self.root / "log-groups"

    @property
    def jobs(self) -> Path:
        """One folder per execution, one per job inside it."""
        return self.root / "jobs"

    @property
    def image_environments(self) -> Path:
        """The Python environments jobs and model servers run in (jobs/image_python.py): links to
        the image's packages, shown read-only to each process that runs in one."""
        return self.root / "image-environments"

    def execution_dir(self, execution_id: str) -> Path:
        return self.jobs / execution_id

    def execution_log(self, execution_id: str) -> Path:
        return self.execution_dir(execution_id) / "execution.log"

    def job_dirs(self) -> dict[str, Path]:
        """Every job's folder, by job name: a job name is never reused, so it names one folder."""
        return {path.name: path for path in self.jobs.glob("*/*") if path.is_dir()}

    @property
    def server_info(self) -> Path:
        """pid, port and URL of the running server, for clients to find it."""
        return self.root / "server.json"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"

    @property
    def credentials(self) -> Path:
        """The access key id and secret that every request to the server must be signed with."""
        return self.root / "credentials.json"

    def confinement(self) -> Confinement:
        """What jobs and model servers must not see or change: this state (the server's
        credentials, its database, Lambda code, other jobs' and endpoints' files), the user's home
        folder (their keys and files: a container sees nothing of the machine it runs on, so a step
        that reads `~/data.csv` fails here as it fails on SageMaker), and the project's code
        (read-only, shown even where it is inside the home folder)."""
        return Confinement(read_only=(REPO_ROOT,), hidden=(self.root, private_home()))

    def lambda_confinement(self) -> Confinement:
        """A Lambda environment's: the same, nothing writable but its own /tmp, as Lambda's
        filesystem is read-only but /tmp, and no shared memory: Lambda has no /dev/shm, so
        multiprocessing's locks, queues and pools fail there (OSError, errno 38; here the empty,
        read-only /dev/shm gives errno 30) and must fail here too."""
        base = self.confinement()
        return replace(base, hidden=(*base.hidden, SHARED_MEMORY), writable_only_tmp=True)

    def create_root(self) -> None:
        """The state directory, open to its owner only: it holds credentials and captured traffic."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(self.root.stat().st_mode) != 0o700:
            self.root.chmod(0o700)

    @property
    def server_lock(self) -> Path:
        """Held by the one server that owns this state."""
        return self.root / "server.lock"


def private_home() -> Path:
    """The user's home folder, hidden from every confined child; only its AWS keys where the home
    is the root of the file system (hiding that would hide everything)."""
    home = Path.home()
    return home / ".aws" if home == Path(home.anchor) else home
