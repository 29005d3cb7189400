"""``python -m ptychopinn`` (also what ``torchrun -m ptychopinn train ...`` runs)."""

import sys

from ptychopinn.cli.main import main

sys.exit(main())
