"""``python -m lstmkit``: the command line."""

import sys

from lstmkit.cli.app import main

sys.exit(main())
