"""Where a Python interpreter's installation is: what a confined process running it must see.

A confined child sees nothing of the user's home folder (system/isolation.py), and interpreters
often live there (pyenv, uv, conda). An interpreter needs its installation, the folder with its
standard library and shared library, as well as the virtual environment it may run from.
"""

from __future__ import annotations

import os
from pathlib import Path

VENV_CONFIG = "pyvenv.cfg"


def installation(python: Path) -> Path:
    """The installation `python` runs from: for a virtual environment's interpreter the one its
    pyvenv.cfg names as `home` (as Python itself finds it, whether the environment links or copies
    the binary), else the folder above the real binary's `bin`."""
    config = Path(python).parent.parent / VENV_CONFIG
    if config.is_file():
        for line in config.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "home":
                return Path(os.path.realpath(value.strip())).parent
    return Path(os.path.realpath(python)).parent.parent
