"""A job's Python environment: the base interpreter and links to the image's distributions only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy

from pipelines.local.jobs.image_python import environment_for, image_distributions, image_python

from .world import local_sagemaker

PATHS_SCRIPT = "import json, sys; print(json.dumps({'prefix': sys.prefix, 'path': sys.path}))"


def test_the_environment_searches_only_the_standard_library_and_its_own_site_packages(tmp_path: Path) -> None:
    environment = image_python(tmp_path / "environments")

    ran = subprocess.run(
        [environment.python, "-c", PATHS_SCRIPT], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    seen = json.loads(ran.stdout)

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = str(environment.folder / "lib" / version / "site-packages")
    assert seen["prefix"] == str(environment.folder)
    assert [path for path in seen["path"] if path.endswith("site-packages")] == [site_packages]
    others = [path for path in seen["path"] if path not in ("", site_packages)]
    assert others and all(Path(path).is_relative_to(sys.base_prefix) for path in others), others

def test_what_a_requirement_needs_comes_with_it_and_nothing_else_does() -> None:
    names = set(image_distributions(("vaderSentiment", "pandas[timezone]")))
    alone = set(image_distributions())

    assert {"numpy", "scikit-learn", "scipy", "pandas", "boto3", "botocore"} <= alone
    # requests: vaderSentiment requires it; pytz: pandas's `timezone` extra does
    assert names - alone >= {"vadersentiment", "requests", "pytz"}
    assert "pytz" not in alone  # pandas alone does not bring it
    assert not {"sagemaker", "moto", "pytest", "sentiment-pipeline"} & names


def test_an_environment_is_made_once_and_shared_by_every_job_that_needs_the_same_packages(
    tmp_path: Path,
) -> None:
    first = image_python(tmp_path)
    (first.folder / "marker").write_text("made once")

    assert image_python(tmp_path) == first and (first.folder / "marker").exists()
    with_vader = image_python(tmp_path, ["vaderSentiment"])
    assert with_vader != first
    made = sorted(path.name for path in tmp_path.iterdir())
    assert made == sorted([first.folder.name, with_vader.folder.name])  # no scratch folder left


def test_a_server_starting_removes_what_a_killed_one_left_half_made_and_an_upgrade_left_unusable(
    tmp_path: Path,
) -> None:
    backend = local_sagemaker(tmp_path / "state")
    environments = backend.context.layout.image_environments
    half_made = environments / ".making-k1ll3d"
    (half_made / "lib").mkdir(parents=True)
    upgraded_away = environments / "0ld0ld0ld0ld0ld0" / "lib" / "python3.11" / "site-packages"
    upgraded_away.mkdir(parents=True)
    (upgraded_away / "numpy").symlink_to(tmp_path / "uninstalled" / "numpy")  # the old version's folder
    whole = environments / "wh0lewh0lewh0le0" / "lib" / "python3.11" / "site-packages"
    whole.mkdir(parents=True)
    (whole / "numpy").symlink_to(Path(numpy.__file__).parent)  # another digest's, still usable
    made = environment_for(environments)

    backend.start()  # the image's environment is made on a thread, after the sweep
    deadline = time.monotonic() + 30
    while not made.python.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    backend.shutdown()

    left = sorted(path.name for path in environments.iterdir())
    assert left == sorted([made.folder.name, "wh0lewh0lewh0le0"])
