"""``python -m agentwm.agents.textworld ...``."""

import sys

from agentwm.agents.textworld.cli import main

sys.exit(main())
