"""``python -m ofa_edge``: the same as the ``ofa-edge`` command."""

import sys

from ofa_edge.cli import main

sys.exit(main())
