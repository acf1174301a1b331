"""``python -m tfxfer.cli``: the same as the ``tfxfer`` console script."""

import sys

from tfxfer.cli import main

sys.exit(main())
