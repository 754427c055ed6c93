"""``python -m rocksds.cli``: the ``rocksds`` command."""

import sys

from . import main

sys.exit(main())
