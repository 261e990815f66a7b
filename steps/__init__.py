"""Code that runs inside SageMaker containers and Lambda; each entry script also runs standalone,
with the shared modules of `lib/` (artifact.py, monitoring/) beside it."""
