"""Tests for the local SageMaker (pipelines/local)."""
