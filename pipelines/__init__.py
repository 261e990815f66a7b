"""The sentiment classifier's SageMaker pipeline: definition, settings, CLI and local SageMaker."""
