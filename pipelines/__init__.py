"""The sentiment classifier's SageMaker pipeline: definition, settings, CLI and the local SageMaker."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout: data/, out/, pipeline.toml
