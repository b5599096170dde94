"""`python -m fsd` — same as the `fsd` command."""

from fsd.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
