"""`python -m mpkg` is the `mpkg` command.

`python -m` puts the current directory first on sys.path; the `mpkg` script does not. Drop
it, as `python -P` would, so that a `numpy.py` or `onnxruntime.py` in the folder a server is
started from is never imported by mpkg or by package code (spec/runtime.md §1.1).
"""

import os
import sys

if sys.path and os.path.realpath(sys.path[0] or ".") == os.path.realpath(os.getcwd()):
    del sys.path[0]

from .cli import main

sys.exit(main())
