"""`python -m firmware_sim terabee ...`."""

import sys

from firmware_sim.cli import main

sys.exit(main())
