"""``python -m costwise`` and the ``costwise`` command (``costwise.__main__:main``)."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
