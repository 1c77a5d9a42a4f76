"""`python -m keyplane` runs the command line interface."""

from __future__ import annotations

from keyplane.cli.main import main

if __name__ == "__main__":
    main()
