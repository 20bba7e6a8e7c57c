"""``python -m bioplaus`` is the ``bioplaus`` command."""

import sys

from .cli import main

sys.exit(main())
