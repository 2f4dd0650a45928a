"""``python -m regfit …`` is the same as ``regfit …``."""

from regfit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
