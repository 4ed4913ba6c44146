"""``python -m dynrep``: the ``dynrep`` command (:mod:`dynrep.cli`)."""
import sys

from dynrep.cli import main

sys.exit(main())
