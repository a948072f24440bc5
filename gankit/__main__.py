"""``python -m gankit`` (and ``torchrun -m gankit``) runs the CLI."""

from gankit.cli import main

raise SystemExit(main())
