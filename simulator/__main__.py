"""``python -m simulator`` runs the ``systolic-sim`` command line."""

import sys

from ._entry import main

sys.exit(main())
