"""``python -m simulator`` runs the ``systolic-sim`` command line."""

import sys

from .cli import main

sys.exit(main())
