"""``python -m netlab.manager --state FILE``: see :mod:`netlab.manager.process`."""

import sys

from netlab.manager.process import main

sys.exit(main())
