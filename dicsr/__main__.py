"""``python -m dicsr`` runs the command line."""

import sys

from dicsr.cli import main

sys.exit(main())
