"""`python -m mpkg` is the `mpkg` command."""

import sys

from .cli import main

sys.exit(main())
