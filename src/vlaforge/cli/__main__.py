"""``python -m vlaforge.cli`` (how launchers start a stage in each process)."""

import sys

from vlaforge.cli import main

sys.exit(main())
