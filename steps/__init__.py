"""Scripts that run inside SageMaker containers; each one also runs standalone as a single file."""
