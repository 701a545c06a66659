"""`python -m lowres.cli ...`: the same entry point as the `lowres` script."""

import sys

from lowres.cli import main

sys.exit(main())
