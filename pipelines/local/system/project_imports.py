"""How this machine's Python finds the project's own packages, which a job must not import.

The SageMaker image has only its own packages and the job's code: a step that imports `pipelines` or
`steps` (say `from steps.scorer import ...` beside a flat /opt/ml/code) fails there. Here the
project is installed into the environment that runs the jobs, so its install is hidden from them
(StateLayout.job_confinement). Model servers import it: it is their serving stack.
"""

from __future__ import annotations

import functools
import site
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

PROJECT_DISTRIBUTION = "sentiment-pipeline"  # pyproject.toml's [project] name
# The top-level packages of this project, which no SageMaker image has.
PROJECT_PACKAGES = ("pipelines", "steps")


@dataclass(frozen=True)
class ProjectImports:
    """.pth files (an editable install's) and package folders (a regular install's) in
    site-packages through which the project is importable."""

    path_files: tuple[Path, ...]
    packages: tuple[Path, ...]


@functools.cache
def project_imports() -> ProjectImports:
    """Found by the distribution's name (a lookup of its metadata folder, well under a
    millisecond; listing what every installed distribution provides took 0.26 s, on the first
    job of a run)."""
    path_files: list[Path] = []
    packages: set[Path] = set()
    # Installed ones only: the checkout's own egg-info, found through the working directory, is not.
    for found in distributions(name=PROJECT_DISTRIBUTION, path=site.getsitepackages()):
        for file in found.files or ():
            if file.suffix == ".pth" and len(file.parts) == 1:
                path_files.append(Path(str(found.locate_file(file))))
            elif file.parts[0] in PROJECT_PACKAGES:
                packages.add(Path(str(found.locate_file(file.parts[0]))))
    return ProjectImports(tuple(path_files), tuple(sorted(packages)))
