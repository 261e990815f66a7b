"""`python -m pipelines ...` runs the CLI."""

from pipelines.cli import main

raise SystemExit(main())
