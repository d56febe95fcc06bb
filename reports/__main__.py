"""``python -m reports``: the same as the ``backprop-harness`` command."""

import sys

from reports.cli import main

sys.exit(main())
