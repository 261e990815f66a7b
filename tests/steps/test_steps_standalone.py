"""Each step script must import on its own: SageMaker ships it without the rest of the project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from step_helpers import write_library

STEPS = Path(__file__).resolve().parents[2] / "steps"
# Even if the project is pip-installed, importing its packages from a script must fail here.
BLOCK_PROJECT = "import sys; sys.modules['steps'] = sys.modules['pipelines'] = None; "


# The scripts whose job also gets the library folder (pipelines/definition.py: the "lib" input).
LIBRARY_USERS = {"evaluate", "monitor"}
# What ships in the same folder: the training source dir, the artifact's code/, the Lambda zip.
BESIDE = {"train": ["scorer"], "inference": ["scorer"], "deploy": ["integrity"]}


def entry(name: str) -> str:
    """The function SageMaker or Lambda calls in that script."""
    return {"inference": "model_fn", "deploy": "handler"}.get(name, "main")


@pytest.mark.parametrize(
    "name", ["preprocess", "train", "evaluate", "monitor", "inference", "deploy"]
)
def test_script_imports_alone(tmp_path: Path, name: str) -> None:
    for module in [name, *BESIDE.get(name, [])]:
        shutil.copyfile(STEPS / f"{module}.py", tmp_path / f"{module}.py")
    if name in LIBRARY_USERS:
        write_library(tmp_path / "ml")
    result = subprocess.run(
        [
            sys.executable,
            "-E",
            "-c",
            BLOCK_PROJECT + f"import {name}; assert callable({name}.{entry(name)})",
        ],
        cwd=tmp_path,
        env={"SAGEMAKER_BASE_DIR": str(tmp_path / "ml"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
