"""``python -m agentwm``: the ``agentwm`` command."""

from agentwm.cli import main

raise SystemExit(main())
