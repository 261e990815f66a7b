"""Local SageMaker: pipelines, jobs and endpoints on this machine, without AWS or Docker."""
