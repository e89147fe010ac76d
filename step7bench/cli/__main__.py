"""`python -m step7bench.cli ...`, the same as the `step7bench` script."""

import sys

from step7bench.cli import main

sys.exit(main())
